"""OpenAPI 3.1 document of one ML service, with the request schema derived
from the config set's inputs."""

from __future__ import annotations

import re
from typing import Any

from mlrm import __version__
from mlrm.config.example import example_body
from mlrm.config.sections import SequenceSpec
from mlrm.config.service_config import Feature, ServiceConfig
from mlrm.core.rowcode import bounds
from mlrm.rest.inference import KNOWN

_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}
FEEDBACK_RESPONSE = {
    "type": "object", "required": ["accepted", "id", "delivered"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 1, "description": "Records stored in the outbox"},
        "id": {"type": "string", "description": "The outbox entry's Idempotency-Key"},
        "delivered": {"type": "boolean", "description": "Already sent on to the training service"},
        "pending": {"type": "integer", "minimum": 0}, "dead": {"type": "integer", "minimum": 0},
        "last_error": {"type": ["string", "null"]},
    },
}  # fmt: skip
INFER_RESPONSE = {
    "type": "object", "required": ["model_name", "model_version", "outputs"],
    "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name", "shape", "datatype"],
            "properties": {"name": {"enum": ["predict", "predict_proba", "score"]},
                           "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                           "datatype": {"enum": ["BYTES", "FP64", "BOOL"]}, "data": {"type": "array"},
                           "parameters": {"type": "object"}},
        }},
    },
}  # fmt: skip


def feature_schema(f: Feature) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _TYPES[f.type]} if f.type in _TYPES else {"enum": list(f.values or ())}
    if f.type in ("number", "integer"):
        # What RowEncoder accepts: min and max as declared, float32's range where they are not.
        low, high = bounds(f)
        schema["minimum"] = f.min if low == f.min else low
        schema["maximum"] = f.max if high == f.max else high
    if f.default is not None:
        schema["default"] = f.default
    described = " ".join(x for x in (f.description, f"[{f.unit}]" if f.unit else "") if x)
    if described:
        schema["description"] = described
    return schema


def instance_schema(config: ServiceConfig) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: feature_schema(f) for f in config.inputs},
        "required": [f.name for f in config.inputs if f.required],
        "additionalProperties": False,
    }
    spec = config.sequence
    return record if spec is None else sequence_instance_schema(spec, record)


def sequence_instance_schema(spec: SequenceSpec, record: dict[str, Any]) -> dict[str, Any]:
    """A ready window of records, or one record (with its stream id and time) to buffer."""
    fields: dict[str, Any] = {}
    if spec.stream:
        fields[spec.stream] = {"type": ["string", "integer"], "description": "Stream id (sequence.stream)"}
    if spec.order_by:
        fields[spec.order_by] = {"type": ["number", "string"], "description": "Record time: seconds or ISO 8601"}
    with_fields = {**record, "properties": {**record["properties"], **fields}}
    window = {
        "type": "object",
        "required": ["window"],
        "additionalProperties": False,
        "properties": {"window": {"type": "array", "minItems": spec.window, "maxItems": spec.window,
                                  "items": with_fields}},
    }  # fmt: skip
    return {"oneOf": [window, {**with_fields, "required": [*record["required"], *fields]}]}


def record_schema(config: ServiceConfig) -> dict[str, Any]:
    """One labelled record as feedback and the training service's samples take it: inputs, target and sequence fields."""
    properties = {f.name: feature_schema(f) for f in config.inputs}
    required = [f.name for f in config.inputs if f.required and f.default is None]
    spec = config.sequence
    if spec and spec.stream:
        properties[spec.stream] = {"type": ["string", "integer"], "maxLength": 1024, "description": "Stream id"}
        required.append(spec.stream)
    if spec and spec.order_by:
        properties[spec.order_by] = {"type": ["number", "string"], "maxLength": 1024, "description": "Record time"}
        required.append(spec.order_by)
    target = config.target
    if target is not None:
        properties[target.name] = {"enum": list(target.labels)} if target.labels else {"type": "number"}
        required.append(target.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def predict_response_schema(config: ServiceConfig) -> dict[str, Any]:
    """The 200 body of /v1/predict (mlrm.core.answer.Answer): one entry per instance in each list."""
    nullable = config.sequence is not None  # a record still waiting for its window is answered with null
    if config.task == "classification":
        prediction: dict[str, Any] = {"enum": [*config.labels, *([None] if nullable else [])]}
    else:
        kind = "boolean" if config.task == "anomaly" else "number"
        prediction = {"type": [kind, "null"] if nullable else kind}
    properties: dict[str, Any] = {
        "predictions": {"type": "array", "items": prediction},
        "model": {
            "type": "object", "required": ["name", "version"],
            "properties": {"name": {"const": config.name}, "version": {"type": ["integer", "null"]}},
        },
    }  # fmt: skip
    if config.task == "classification":
        labels = {str(label): {"type": "number", "minimum": 0, "maximum": 1} for label in config.labels}
        row = {"type": "object", "properties": labels, "description": "Probability by label"}
        items = {**row, "type": ["object", "null"]} if nullable else row
        properties["probabilities"] = {"type": "array", "items": items}
    if config.task == "anomaly":
        properties["scores"] = {"type": ["array", "null"], "items": {"type": ["number", "null"]},
                                "description": "Anomaly score: higher is more anomalous"}  # fmt: skip
    if nullable:
        properties["windows"] = {"type": "array", "items": {
            "type": "object", "required": ["stream", "pending", "needed"],
            "properties": {"stream": {"type": ["string", "null"]}, "pending": {"type": "boolean"},
                           "needed": {"type": "integer", "minimum": 0}},
        }}  # fmt: skip
    return {"type": "object", "required": ["predictions", "model"], "properties": properties}


def operation_id(method: str, path: str) -> str:
    """A stable operationId from method and path: post_v1_predict, get_v2_models_name_ready."""
    return "_".join([method, *re.findall(r"[A-Za-z0-9]+", path)])


def with_operation_ids(paths: dict[str, Any]) -> dict[str, Any]:
    """paths with an operationId on every operation, from its path: unique as paths are (also after copying
    an operation to another path; call again on the whole document then)."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                operation["operationId"] = operation_id(method, path)
    return paths


IDS = {
    "type": "array", "items": {"type": ["string", "integer"]},
    "description": "One id per item: feedback with the same id scores the prediction (GET /v1/performance).",
}  # fmt: skip


def document(config: ServiceConfig) -> dict[str, Any]:
    limit = config.limits.max_instances
    problem = {
        "description": "Problem (RFC 9457)",
        "content": {"application/problem+json": {"schema": {"type": "object"}}},
    }
    predict_request = {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "minItems": 1, "maxItems": limit, "items": instance_schema(config)},
            "ids": IDS,
        },
    }
    simple = {"200": {"description": "OK"}}
    feedback = {
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "records": {"type": "array", "minItems": 1, "maxItems": limit, "items": record_schema(config)},
            "ids": IDS,
        },
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": sorted(KNOWN)},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    infer = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "parameters": {"type": "object"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{config.name} (mlrm)", "version": __version__, "description": config.description},
        "paths": with_operation_ids({
            "/v1/predict": {
                "post": {
                    "summary": "Predict for one or more instances",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": predict_request, "example": example_body(config)}}},
                    "responses": {"200": {"description": "Predictions", **_json(predict_response_schema(config))},
                                  "400": problem, "413": problem, "422": problem, "503": problem},
                }
            },
            "/v1/config": {"get": {"summary": "Resolved config and learned-state metadata", "responses": simple}},
            "/v1/admin/reload": {"post": {"summary": "Load the current version now", "responses": simple}},
            "/v1/drift": {"get": {"summary": "Input and prediction drift against the version's reference profile "
                                  "(docs/drift.md)", "responses": simple}},
            "/v1/performance": {"get": {"summary": "The live metric from feedback against the version's holdout "
                                        "metric (docs/drift.md)", "responses": simple}},
            "/v1/mqtt": {"get": {"summary": "MQTT bridge state (200 connected, 503 not)", "responses": simple}},
            "/": {"get": {"summary": "Name, version and endpoints of this service", "responses": simple}},
            "/openapi.json": {"get": {"summary": "This document", "responses": simple}},
            "/v1/feedback": {
                "post": {"summary": "Send true labels ({records: [...]}) on to the training service",
                         "requestBody": {"required": True, **_json(feedback)},
                         "responses": {"202": {"description": "Stored in the outbox", **_json(FEEDBACK_RESPONSE)},
                                       "413": problem, "422": problem,
                                       "503": problem}},
                "get": {"summary": "Feedback outbox: pending and set-aside entries", "responses": simple},
            },
            "/v2": {"get": {"summary": "Server metadata (Open Inference Protocol)", "responses": simple}},
            "/v2/health/live": {"get": {"summary": "Liveness", "responses": simple}},
            "/v2/health/ready": {"get": {"summary": "Readiness", "responses": {**simple, "503": problem}}},
            **_models(config, infer, problem),
            "/metrics": {"get": {"summary": "Prometheus metrics (docs/metrics.md)", "responses": simple}},
        }),
    }  # fmt: skip


def _models(config: ServiceConfig, infer: dict[str, Any], problem: dict[str, Any]) -> dict[str, Any]:
    """The Open Inference Protocol's model routes, with and without a version."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"enum": [config.name]}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    answers = {"200": {"description": "OK"}, "404": problem}
    inferred = {"description": "Output tensors (JSON, or binary tensor data as asked)", **_json(INFER_RESPONSE)}
    paths: dict[str, Any] = {}
    for prefix, parameters in (
        ("/v2/models/{name}", [name]),
        ("/v2/models/{name}/versions/{version}", [name, version]),
    ):
        paths[prefix] = {"get": {"summary": "Model metadata", "parameters": parameters, "responses": answers}}
        paths[f"{prefix}/ready"] = {
            "get": {"summary": "Model readiness", "parameters": parameters, "responses": {**answers, "503": problem}}
        }
        paths[f"{prefix}/infer"] = {
            "post": {
                "summary": "Inference (Open Inference Protocol; JSON, or binary tensor data after an "
                "Inference-Header-Content-Length JSON header)",
                "parameters": parameters,
                "requestBody": {"required": True, **_json(infer)},
                "responses": {**answers, "200": inferred, "400": problem, "413": problem, "422": problem},
            }
        }
    return paths


def _set_routes(paths: dict[str, Any]) -> list[str]:
    """The /v1 routes of one set (every /v1/X of its document): for every set they are at /v1/models/{name}/X."""
    return [path for path in paths if path.startswith("/v1/") and not path.startswith("/v1/models")]


_MODELS_LIST = {
    "get": {
        "summary": "Every config set served: name, path, available, ready, version (why not, and the fix)",
        "responses": {"200": {"description": "OK"}},
    }
}


def _per_model(config: ServiceConfig, *, templated: bool) -> dict[str, Any]:
    """One set's routes under its name: /v1/models/NAME/... and /v2/models/NAME/...

    templated: as /v1/models/{name}/... with the name a path parameter (one set served, whose
    /v2/models/{name} routes the document has already); else with the name written in each path."""
    paths = document(config)["paths"]
    name = {"name": "name", "in": "path", "required": True, "schema": {"enum": [config.name]}}
    at = "{name}" if templated else config.name
    index = {
        "get": {"summary": "Name, version and endpoints of this model", "responses": {"200": {"description": "OK"}}}
    }
    out = {f"/v1/models/{at}/{rule[len('/v1/') :]}": paths[rule] for rule in _set_routes(paths)}
    out[f"/v1/models/{at}"] = index
    if templated:
        for item in out.values():
            for op in item.values():
                op["parameters"] = [name, *op.get("parameters", [])]
                op["responses"].setdefault("404", {"description": "No model of that name is served"})
        return out
    for path, item in paths.items():
        if path.startswith("/v2/models/{name}"):
            out[path.replace("{name}", config.name)] = {
                method: {**op, "parameters": [p for p in op["parameters"] if p["name"] != "name"]}
                for method, op in item.items()
            }
    return out


def set_document(configs: list[ServiceConfig], *, single: bool) -> dict[str, Any]:
    """The document of a service serving configs: one set (single) keeps its /v1 routes beside the
    per-model ones; several have only the routes of the whole service and each set's own."""
    doc = document(configs[0])
    paths: dict[str, Any] = doc["paths"]
    if not single:
        doc["info"]["title"] = f"{', '.join(c.name for c in configs)} (mlrm)"
        doc["info"]["description"] = "Several config sets, each at /v1/models/{name}/... and /v2/models/{name}/..."
        own = {*_set_routes(paths)}
        paths = {k: v for k, v in paths.items() if k not in own and not k.startswith("/v2/models/")}
    paths["/v1/models"] = _MODELS_LIST
    for config in configs:
        paths.update(_per_model(config, templated=single))
    doc["paths"] = with_operation_ids(paths)  # operations copied to /v1/models/NAME/... get their own ids
    return doc
