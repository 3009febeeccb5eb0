"""The Flask app of an ML service: `create_app(config)`, no globals.

One app serves one config set or several (`mlrm serve a b`, a ServiceSet):
every set at `/v1/models/{name}/...` and `/v2/models/{name}/...`, and the one
set, when only one is served, at `/v1/predict`, `/v1/config` and the other
`/v1` routes too. Routes are one table; every handler decodes, calls the
transport-free Service of its set, and encodes. One error handler turns every
failure into a problem body, so no request can crash a worker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from mlrm import __version__
from mlrm.config import ServiceConfig, load_config_set
from mlrm.core.answer import Answer
from mlrm.core.performance import ids_of
from mlrm.core.service import Service
from mlrm.core.service_set import ServiceSet
from mlrm.credentials import guard_of
from mlrm.errors import NotFoundError, RequestError
from mlrm.rest import binary_tensors, inference, openapi
from mlrm.rest.access import protect
from mlrm.rest.binary_tensors import HEADER
from mlrm.rest.codec import body_of, decode, error_handler, respond
from mlrm.rest.fastroute import Fast, PredictRoute, server_timing
from mlrm.rest.metrics import DriftCollector, Metrics, PerformanceCollector
from mlrm.storage.bridge_status import read_status
from mlrm.training.feedback import Feedback


class ServiceApi:
    """Handlers over one Service."""

    def __init__(
        self, service: Service, metrics: Metrics, mqtt_status: Path | None = None, feedback: Feedback | None = None
    ) -> None:
        self.service, self.metrics = service, metrics
        self.mqtt_status = mqtt_status
        self.feedback = feedback or Feedback.from_config(service.config)
        self.feedback.monitors = self.monitors
        self.config = service.config
        # Metric children looked up once, not per request.
        self._rows = metrics.rows.labels(service.name)
        self._by_label: dict[str, Any] = {}
        self._observe_version()
        service.listeners.append(lambda model: self._observe_version())
        # Looked up now, so both series exist (at 0) from the start.
        reloads, failures = metrics.reloads.labels(service.name), metrics.reload_failures.labels(service.name)
        service.listeners.append(lambda model: reloads.inc())
        service.failure_listeners.append(lambda reason: failures.inc())

    def _observe_version(self) -> None:
        name = self.service.name
        self.metrics.ready.labels(name).set(1 if self.service.ready else 0)
        if self.service.version is not None:
            self.metrics.version.labels(name).set(self.service.version)

    def _count(self, answer: Answer) -> None:
        # A buffered record still waiting for its window is answered with null.
        predictions = [p for p in answer["predictions"] if p is not None]
        self._rows.inc(len(predictions))
        if self.config.task != "regression":
            counts: dict[str, int] = {}
            for p in predictions:
                counts[str(p)] = counts.get(str(p), 0) + 1
            for label, n in counts.items():
                child = self._by_label.get(label)
                if child is None:
                    child = self._by_label[label] = self.metrics.predictions.labels(self.service.name, label)
                child.inc(n)

    def index(self, endpoints: list[str]) -> Response:
        self.service.maybe_reload()
        return respond({
            "name": self.service.name, "description": self.config.description, "mlrm": __version__,
            "ready": self.service.ready, "version": self.service.version, "endpoints": endpoints,
        })  # fmt: skip

    def answer(self, body: Any) -> Answer:
        """The answer to a decoded /v1/predict body (also called by mlrm.rest.fastroute)."""
        self.feedback.ensure_background()
        if not isinstance(body, dict) or "instances" not in body:
            raise RequestError("Invalid request", 422, detail='expected {"instances": [{feature: value, ...}]}')
        if len(body) > 1:
            unknown = next((k for k in body if k not in ("instances", "ids")), None)
            if unknown is not None:
                raise RequestError(
                    "Invalid request", 422, detail=f"unknown key '{unknown}' at /; only 'instances' and 'ids'"
                )
        instances = body["instances"]
        # Ids make the predictions scoreable by feedback (mlrm.core.performance); checked before predicting.
        ids = ids_of(body, "instances", len(instances)) if isinstance(instances, list) else None
        answer = self.service.predict(instances)
        self._count(answer)
        if ids is not None:
            self.service.performance.remember(ids, answer)
        return answer

    def predict(self) -> Response:
        body = decode(request)
        computing = time.perf_counter()
        answer = self.answer(body)
        compute = time.perf_counter() - computing
        response = respond(answer)
        response.headers["Server-Timing"] = server_timing(compute, time.perf_counter() - g.get("started", computing))
        return response

    def show_config(self) -> Response:
        service = self.service
        service.maybe_reload()
        learned = None
        if service.model is not None:
            params = service.model.parameters
            learned = {k: v for k, v in params.items() if k not in ("preprocessing", "resolved_config", "signature")}
            learned["profile"] = service.model.profile  # the reference profile drift is measured against, or None
        return respond({"config": self.config.resolved(), "learned": learned, "status": service.status()})

    def drift(self) -> Response:
        return respond(self.service.drift_report())

    def reload(self) -> Response:
        result = self.service.reload()
        self._observe_version()
        return respond(result, 200 if result["error"] is None else 500)

    def mqtt(self) -> Response:
        """State of the MQTT bridge beside this app (another process: it reports through a file)."""
        if self.mqtt_status is None and "mqtt" not in self.config.raw:
            raise NotFoundError("MQTT is not configured: add an mqtt section to service.yaml (see docs/mqtt.md)")
        body, status = read_status(self.mqtt_status)
        return respond(body, status)

    def feedback_post(self) -> Response:
        body = decode(request)
        ids = ids_of(body, "records", len(body["records"])) if _has_records(body) else None
        reply = self.feedback.submit(body)
        if ids is not None:  # after submit: only feedback that was kept scores a prediction
            reply["scored"] = self.service.performance.score(ids, body["records"])
        return respond(reply, 202)

    def performance(self) -> Response:
        return respond(self.service.performance_report())

    def monitors(self) -> dict[str, Any]:
        """What the training service's monitor triggers read (pushed by the feedback thread)."""
        return {"drift": self.service.drift_report(), "performance": self.service.performance_report()}

    def feedback_status(self) -> Response:
        return respond(self.feedback.status())

    # Open Inference Protocol (KServe V2)
    def server_ready(self) -> Response:
        self.service.maybe_reload()
        return respond({"ready": self.service.ready}, 200 if self.service.ready else 503)

    def _model(self, name: str, version: str | None) -> None:
        self.service.maybe_reload()
        if name != self.service.name:
            raise NotFoundError(f"no model named {name!r}; this service serves {self.service.name!r}")
        if version is not None and version != str(self.service.version):
            raise NotFoundError(
                f"version {version!r} of {name!r} is not loaded; the current version is {self.service.version}"
            )

    def model_metadata(self, name: str, version: str | None = None) -> Response:
        self._model(name, version)
        return respond(inference.metadata(self.config, self.service.version))

    def model_ready(self, name: str, version: str | None = None) -> Response:
        self._model(name, version)
        return respond({"name": name, "ready": self.service.ready}, 200 if self.service.ready else 503)

    def infer(self, name: str, version: str | None = None) -> Response:
        self._model(name, version)
        body = binary_tensors.read_request(
            body_of(request), mimetype=request.mimetype, header_length=request.headers.get(HEADER),
            encoding=request.headers.get("Content-Encoding"), limit=request.max_content_length,
        )  # fmt: skip
        rows = inference.instances_from_inputs(self.config, body)
        answer = self.service.predict(rows)
        self._count(answer)
        reply = {
            "model_name": name,
            "model_version": str(answer["model"]["version"]),
            "outputs": inference.outputs(self.config, answer, body.get("outputs")),
        }
        if "id" in body:
            reply["id"] = body["id"]
        payload, header_length = binary_tensors.write_reply(reply, body)
        if header_length is None:
            return Response(payload, mimetype="application/json")
        return Response(payload, mimetype="application/octet-stream", headers={HEADER: str(header_length)})


class ModelsApi:
    """The app's handlers: each finds the ServiceApi of the set a request names (or the only set)."""

    def __init__(self, services: ServiceSet, metrics: Metrics, mqtt_status: Mapping[str, Path]) -> None:
        self.services, self.metrics, self.mqtt_status = services, metrics, mqtt_status
        self.apis: dict[str, ServiceApi] = {}
        for name in services.services:
            self._api_of(name)
        for name in services.unusable:
            metrics.ready.labels(name).set(0)
        services.listeners.append(self._serve_fixed)
        self.openapi = openapi.set_document(
            [api.config for api in self.apis.values()], single=services.only() is not None
        )

    def _serve_fixed(self, service: Service) -> None:
        """A set that did not load loads now (its service.yaml was fixed): its handlers and metrics."""
        self._api_of(service.name)

    def _api_of(self, name: str) -> ServiceApi:
        api = self.apis.get(name)
        if api is None:
            api = self.apis[name] = ServiceApi(self.services.get(name), self.metrics, self.mqtt_status.get(name))
        return api

    def api(self, name: str | None) -> ServiceApi:
        """The ServiceApi of the set a request names (None: the only one): 404 or 503 problems otherwise."""
        if name is None:
            name = self.services.only()
            if name is None:
                raise NotFoundError(
                    f"this service serves {len(self.services.names())} models ({', '.join(self.services.names())}): "
                    f"name one in the path, e.g. {request.path.replace('/v1/', '/v1/models/{name}/', 1)}"
                )
        if name in self.services.services or name in self.services.unusable:
            g.mlrm_model = name  # a metrics label: only names served, never whatever a path says
        self.services.get(name)  # 404 naming the served sets, or 503 with the fix for an unusable one
        api = self._api_of(name)
        request.max_content_length = api.config.limits.max_body_bytes
        return api

    def fast(self, name: str | None) -> Fast | None:
        """What the fast predict path needs for a set (None: let Flask answer; it says what is wrong)."""
        name = self.services.only() if name is None else name
        api = None if name is None else self.apis.get(name)
        return None if api is None else Fast(api.service.name, api.answer, api.config.limits.max_body_bytes)

    def ensure_background(self) -> None:
        for api in list(self.apis.values()):
            api.feedback.ensure_background()

    # /v1: one set's routes, at /v1/models/{name}/... or (only one set served) at /v1/...
    def predict(self, name: str | None = None) -> Response:
        return self.api(name).predict()

    def show_config(self, name: str | None = None) -> Response:
        return self.api(name).show_config()

    def reload(self, name: str | None = None) -> Response:
        return self.api(name).reload()

    def drift(self, name: str | None = None) -> Response:
        return self.api(name).drift()

    def mqtt(self, name: str | None = None) -> Response:
        return self.api(name).mqtt()

    def performance(self, name: str | None = None) -> Response:
        return self.api(name).performance()

    def feedback_post(self, name: str | None = None) -> Response:
        return self.api(name).feedback_post()

    def feedback_status(self, name: str | None = None) -> Response:
        return self.api(name).feedback_status()

    def models(self) -> Response:
        """Every set served: name, path, available, ready, version (and for one that cannot answer, why and the fix)."""
        return respond({"models": self.services.describe()})

    def model_index(self, name: str) -> Response:
        return self.api(name).index(sorted(p for p in self.openapi["paths"] if f"/models/{name}" in p))

    # The whole service
    def index(self) -> Response:
        only = self.services.only()
        if only is not None:
            return self.api(only).index(sorted(self.openapi["paths"]))
        models = self.services.describe()
        return respond({
            "name": "mlrm", "mlrm": __version__, "ready": all(m["ready"] for m in models), "models": models,
            "endpoints": sorted(self.openapi["paths"]),
        })  # fmt: skip

    def openapi_json(self) -> Response:
        return respond(self.openapi)

    def metrics_text(self) -> Response:
        # content_type=, not mimetype=: Flask would append a second charset to the one the type has.
        return Response(self.metrics.render(), content_type=self.metrics.content_type)

    # Open Inference Protocol (KServe V2)
    def server_metadata(self) -> Response:
        return respond({"name": "mlrm", "version": __version__, "extensions": ["binary_tensor_data"]})

    def live(self) -> Response:
        return respond({"live": True})

    def server_ready(self) -> Response:
        """Ready when every set served can answer (OIP: the server is ready for all its models)."""
        only = self.services.only()
        if only is not None:
            return self.api(only).server_ready()
        models = {m["name"]: m["ready"] for m in self.services.describe()}
        ready = all(models.values())
        return respond({"ready": ready, "models": models}, 200 if ready else 503)

    def model_metadata(self, name: str, version: str | None = None) -> Response:
        return self.api(name).model_metadata(name, version)

    def model_ready(self, name: str, version: str | None = None) -> Response:
        return self.api(name).model_ready(name, version)

    def infer(self, name: str, version: str | None = None) -> Response:
        return self.api(name).infer(name, version)


# (rule, methods, handler name, scope): the whole HTTP surface in one place. The scope a token
# needs (mlrm/credentials.py); None: open, so supervisors' probes and API tools work without one.
ROUTES: list[tuple[str, list[str], str, str | None]] = [
    ("/", ["GET"], "index", "predict"),
    ("/v1/predict", ["POST"], "predict", "predict"),
    ("/v1/config", ["GET"], "show_config", "admin"),  # learned parameters: the model itself
    ("/v1/admin/reload", ["POST"], "reload", "admin"),
    ("/v1/drift", ["GET"], "drift", "metrics"),  # what the service is asked, as /metrics tells it
    ("/v1/mqtt", ["GET"], "mqtt", "admin"),
    ("/v1/performance", ["GET"], "performance", "metrics"),  # the live metric from feedback
    ("/v1/feedback", ["POST"], "feedback_post", "ingest"),
    ("/v1/feedback", ["GET"], "feedback_status", "ingest"),
    ("/v1/models", ["GET"], "models", "predict"),
    ("/v1/models/<name>", ["GET"], "model_index", "predict"),
    ("/v1/models/<name>/predict", ["POST"], "predict", "predict"),
    ("/v1/models/<name>/config", ["GET"], "show_config", "admin"),
    ("/v1/models/<name>/admin/reload", ["POST"], "reload", "admin"),
    ("/v1/models/<name>/drift", ["GET"], "drift", "metrics"),
    ("/v1/models/<name>/mqtt", ["GET"], "mqtt", "admin"),
    ("/v1/models/<name>/performance", ["GET"], "performance", "metrics"),
    ("/v1/models/<name>/feedback", ["POST"], "feedback_post", "ingest"),
    ("/v1/models/<name>/feedback", ["GET"], "feedback_status", "ingest"),
    ("/openapi.json", ["GET"], "openapi_json", None),  # the shape of the API, no data
    ("/metrics", ["GET"], "metrics_text", "metrics"),  # counts by label tell the plant's defect rate
    ("/v2", ["GET"], "server_metadata", "predict"),
    ("/v2/health/live", ["GET"], "live", None),
    ("/v2/health/ready", ["GET"], "server_ready", None),
    ("/v2/models/<name>", ["GET"], "model_metadata", "predict"),
    ("/v2/models/<name>/versions/<version>", ["GET"], "model_metadata", "predict"),
    ("/v2/models/<name>/ready", ["GET"], "model_ready", None),  # OIP's model readiness probe
    ("/v2/models/<name>/versions/<version>/ready", ["GET"], "model_ready", None),
    ("/v2/models/<name>/infer", ["POST"], "infer", "predict"),
    ("/v2/models/<name>/versions/<version>/infer", ["POST"], "infer", "predict"),
]


def _has_records(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("records"), list)


handle_error = error_handler(
    lambda limit: f"request body too large: the limit is {limit} bytes (limits.max_body_bytes)"
)


def create_app(
    config: ServiceConfig | str | Path | ServiceSet,
    *,
    service: Service | None = None,
    mqtt_status: Path | Mapping[str, Path] | None = None,
    tokens: str | Path | None = None,
) -> Flask:
    """Build the Flask app of an ML service from a config set (or its path), or from a ServiceSet of several.

    mqtt_status: the status file of the MQTT bridge running beside it (/v1/mqtt); for a ServiceSet,
    one per set name.
    tokens: the tokens file every request is checked against (None: every route open).
    """
    if isinstance(config, ServiceSet):
        services = config
    else:
        if not isinstance(config, ServiceConfig):
            config = load_config_set(config)
        services = ServiceSet.of([service or Service(config)])
    services.require_one()
    if not isinstance(mqtt_status, Mapping):
        only = services.only()
        mqtt_status = {only: mqtt_status} if mqtt_status is not None and only is not None else {}
    metrics = Metrics()
    models = ModelsApi(services, metrics, mqtt_status)
    metrics.collectors.append(DriftCollector(lambda: [api.service for api in list(models.apis.values())]))
    metrics.collectors.append(PerformanceCollector(lambda: [api.service for api in list(models.apis.values())]))
    app = Flask("mlrm")
    # The largest of the sets' limits; a request to one set is held to that set's (ModelsApi.api).
    app.config["MAX_CONTENT_LENGTH"] = max(api.config.limits.max_body_bytes for api in models.apis.values())
    first = next(iter(models.apis.values()))
    app.extensions["mlrm"] = {"service": first.service, "metrics": metrics, "feedback": first.feedback,
                              "models": models}  # fmt: skip
    for rule, methods, name, _ in ROUTES:
        app.add_url_rule(rule, f"{name}:{rule}", getattr(models, name), methods=methods)
    app.register_error_handler(Exception, handle_error)
    guard, scopes = guard_of(tokens), {f"{name}:{rule}": scope for rule, _, name, scope in ROUTES}
    protect(app, guard, scopes, lambda view_args: models.api(view_args.get("name")).config.learned_dir)
    predict_scope = scopes["predict:/v1/predict"]
    app.wsgi_app = PredictRoute(  # type: ignore[method-assign]
        app.wsgi_app, models.fast, metrics,
        None if guard.tokens is None else (lambda header: guard.allows(predict_scope, header)),
    )  # fmt: skip

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        models.ensure_background()

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        model = g.get("mlrm_model", "")
        metrics.requests.labels(endpoint, request.method, str(response.status_code), model).inc()
        if "started" in g:
            metrics.latency.labels(endpoint, model).observe(time.perf_counter() - g.started)
        return response

    return app
