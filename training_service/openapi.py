"""OpenAPI 3.1 document of the training service, built from its ROUTES table
and the config sets' inputs, served at GET /openapi.json.

Open, like the ML service's: the shape of the API and no data, so API tools
work. Every route of the table is in it with its parameters and body, so a
fuzzer (tests/test_fuzz.py) reaches every operation; a route without an
entry in OPERATIONS still appears, with a generic JSON body for a POST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlrm import __version__
from mlrm.config.service_config import ServiceConfig
from mlrm.rest.openapi import record_schema
from training_service.selector import KEYS as SELECTOR
from training_service.selector import MAX_ID

Route = tuple[str, list[str], str, str | None]
PROBLEM = {"description": "Problem (RFC 9457)", "content": {"application/problem+json": {"schema": {"type": "object"}}}}
PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Operation:
    """What a handler takes and answers, beyond its path parameters."""

    summary: str
    ok: str = "200"
    body: str | None = None  # a key of the bodies document() builds
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: tuple[str, ...] = ("404",)


OPERATIONS: dict[str, Operation] = {
    "index": Operation("Every config set: usable ones described, unusable ones with reason and fix", problems=()),
    "health": Operation("Liveness; 'degraded' while a config set cannot be used", problems=("503",)),
    "describe": Operation("One config set: algorithm, triggers, gate, active job"),
    "samples": Operation(
        "Store labelled samples (JSON records or CSV); every row's verdict",
        ok="202",
        body="samples",
        problems=("400", "404", "413", "415", "422", "503", "507"),
    ),  # fmt: skip
    "stats": Operation("Sample counts, label balance and triggers"),
    "train": Operation("Queue a training run (joins the active one)", ok="202"),
    "jobs": Operation(
        "Recent training jobs", query={"limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}}
    ),
    "job": Operation("One training job"),
    "put_monitors": Operation(
        "An ML service reports its drift and performance figures (for the monitor triggers)",
        body="monitors",
        problems=("400", "404", "422"),
    ),
    "monitors": Operation("What an ML service last reported of its drift and performance"),
    "versions": Operation("Stored versions with metrics and the gate's verdict"),
    "rollback": Operation("Make a stored version current", body="rollback", problems=("400", "404", "409", "422")),
    "openapi_json": Operation("This document", problems=()),
    "metrics_text": Operation("Prometheus metrics: requests, ingest, jobs, gate decisions", problems=()),
    "current": Operation("The current version and its parameters.yaml sha256; ETag, If-None-Match: 304"),
    "bundle": Operation("Every file of a stored version with its sha256, size and href", problems=("404", "409")),
    "version_file": Operation("One file of a stored version (a name its bundle lists)", problems=("404", "409")),
    "list_samples": Operation(
        "One page of stored samples, by id (next_after: the next page)",
        query={
            "after": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "state": {"enum": ["all", "active", "quarantined"]},
            **{k: {"type": "string"} for k in SELECTOR[:-1]},
        },
        problems=("404", "422"),
    ),  # fmt: skip
    "quarantine": Operation("Keep the selected samples but never train on them", body="selector"),
    "release": Operation("Train on quarantined samples again", body="selector"),
    "delete_samples": Operation("Delete the selected samples", body="selector"),
}


def _bodies(configs: list[ServiceConfig], max_records: int) -> dict[str, dict[str, Any]]:
    records = [record_schema(c) for c in configs]
    items = {"anyOf": records} if len(records) > 1 else records[0] if records else {"type": "object"}
    json_records = {
        "type": "object", "required": ["records"], "additionalProperties": False,
        "properties": {"records": {"type": "array", "minItems": 1, "maxItems": max_records, "items": items}},
    }  # fmt: skip
    rollback = {
        "type": "object", "required": ["version"], "additionalProperties": False,
        "properties": {"version": {"type": "integer", "minimum": 1}, "force": {"type": "boolean", "default": False}},
    }  # fmt: skip
    selector = {
        "type": "object", "minProperties": 1, "additionalProperties": False,
        "properties": {**{k: {"type": ["string", "integer"]} for k in SELECTOR[:-1]}, "all": {"type": "boolean"}},
    }  # fmt: skip
    return {
        "selector": {"application/json": {"schema": selector}},
        "samples": {"application/json": {"schema": json_records},
                    "text/csv": {"schema": {"type": "string", "description": "A header line, then one row per sample"}}},
        "rollback": {"application/json": {"schema": rollback}},
        "monitors": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False,
            "properties": {"drift": {"type": ["object", "null"]}, "performance": {"type": ["object", "null"]}},
        }}},
        "generic": {"application/json": {"schema": {"type": "object"}}},
    }  # fmt: skip


def _operation(method: str, rule: str, handler: str, names: list[str], bodies: dict[str, Any]) -> dict[str, Any]:
    spec = OPERATIONS.get(handler) or Operation(handler.replace("_", " "), body="generic" if method == "POST" else None)
    parameters: list[dict[str, Any]] = []
    for converter, name in PARAMETER.findall(rule):
        if converter == "int":
            schema: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        else:
            schema = {"type": "string", "enum": names} if name == "name" and names else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    parameters += [{"name": k, "in": "query", "required": False, "schema": v} for k, v in spec.query.items()]
    operation: dict[str, Any] = {
        "operationId": f"{handler}:{method.lower()}:{rule}",
        "summary": spec.summary,
        "responses": {spec.ok: {"description": "OK"}, **dict.fromkeys(spec.problems, PROBLEM)},
    }
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {"required": True, "content": bodies[spec.body]}
    return operation


def document(routes: list[Route], configs: list[ServiceConfig], max_records: int) -> dict[str, Any]:
    """The document for these routes over the usable config sets (`name` is one of theirs)."""
    names = [c.name for c in configs]
    bodies = _bodies(configs, max_records)
    paths: dict[str, dict[str, Any]] = {}
    for rule, methods, handler, _ in routes:
        path = PARAMETER.sub(lambda m: "{" + m.group(2) + "}", rule)
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = _operation(method, rule, handler, names, bodies)
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlrm training service", "version": __version__,
                 "description": "Samples, training jobs, versions and rollback for the config sets: " + ", ".join(names)},
        "paths": paths,
    }  # fmt: skip
