"""The HTTP API of the training service: `create_app(settings)`, no globals.

Every handler decodes, calls one TrainingService method and encodes; one
error handler turns every failure into an application/problem+json body.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from mlrm.credentials import guard_of
from mlrm.errors import NotFoundError
from mlrm.rest.access import protect
from mlrm.rest.codec import PROBLEM, body_of, decode, error_handler, respond
from training_service import jobs, openapi
from training_service.core import TrainingService
from training_service.metrics import TrainingMetrics
from training_service.selector import MAX_ID
from training_service.settings import Settings


class TrainingApi:
    """Handlers over one TrainingService."""

    def __init__(self, service: TrainingService, metrics: TrainingMetrics) -> None:
        self.service, self.metrics = service, metrics

    def index(self) -> Response:
        return respond(self.service.index())

    def health(self) -> Response:
        body = self.service.health()
        if body["status"] != "unusable":
            return respond(body)
        # Red for probes: a non-200 problem body that still carries every health field.
        problem = {"type": "https://mlrm.dev/problems/store-unusable", "title": "Store unusable", "status": 503,
                   "detail": f"{body['store']['reason']}. {body['store']['fix']}"}  # fmt: skip
        return respond({**problem, **body}, 503, PROBLEM)

    def describe(self, name: str) -> Response:
        return respond(self.service.describe(name))

    def samples(self, name: str) -> Response:
        body, replayed = self.service.add_samples(
            name, request.mimetype or "", body_of(request), request.headers.get("Idempotency-Key")
        )
        response = respond(body, 202)
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    def list_samples(self, name: str) -> Response:
        return respond(self.service.list_samples(name, request.args.to_dict()))

    def quarantine(self, name: str) -> Response:
        return respond(self.service.change_samples(name, "quarantine", decode(request)))

    def release(self, name: str) -> Response:
        return respond(self.service.change_samples(name, "release", decode(request)))

    def delete_samples(self, name: str) -> Response:
        return respond(self.service.change_samples(name, "delete", decode(request)))

    def stats(self, name: str) -> Response:
        return respond(self.service.stats(name))

    def train(self, name: str) -> Response:
        job, created = self.service.train(name)
        response = respond({"created": created, "job": job}, 202 if created else 200)
        response.headers["Location"] = f"/v1/jobs/{job['id']}"
        return response

    def put_monitors(self, name: str) -> Response:
        return respond(self.service.put_monitors(name, decode(request)))

    def monitors(self, name: str) -> Response:
        return respond(self.service.monitors(name))

    def jobs(self, name: str) -> Response:
        return respond(self.service.jobs(name, min(max(request.args.get("limit", 20, type=int), 1), 200)))

    def job(self, job_id: int) -> Response:
        if job_id > MAX_ID:  # Flask's int converter takes any digits; SQLite's ids stop here
            raise NotFoundError(f"no job {job_id}")
        return respond(self.service.job(job_id))

    def versions(self, name: str) -> Response:
        return respond(self.service.versions(name))

    def rollback(self, name: str) -> Response:
        return respond(self.service.rollback(name, decode(request)))

    def current(self, name: str) -> Response:
        found = self.service.current(name)
        # no-cache: a cache may keep the answer, but must ask again (If-None-Match) before using it.
        headers = {"ETag": f'"{found.etag}"', "Cache-Control": "no-cache"}
        if request.if_none_match.contains(found.etag):
            return Response(status=304, headers=headers)
        body = {"service": name, "version": found.version, "parameters_sha256": found.parameters_sha256,
                "bundle": f"/v1/services/{name}/versions/{found.version}/bundle"}  # fmt: skip
        response = respond(body)
        response.headers.update(headers)
        return response

    def bundle(self, name: str, version: int) -> Response:
        if version > MAX_ID:
            raise NotFoundError(f"'{name}' has no version {version}")
        return respond(self.service.bundle(name, version))

    def version_file(self, name: str, version: int, file: str) -> Response:
        if version > MAX_ID:
            raise NotFoundError(f"'{name}' has no version {version}")
        return Response(self.service.version_file(name, version, file), mimetype="application/octet-stream")

    def metrics_text(self) -> Response:
        # content_type=, not mimetype=: Flask would append a second charset to the one the type has.
        service = self.service
        text = self.metrics.render(service.store, service.services, lambda config: jobs.current_watermark(config)[1])
        return Response(text, content_type=self.metrics.content_type)

    def openapi_json(self) -> Response:
        services = self.service.services  # built per request: config sets come and go while it runs
        configs = [services.get(n) for n in services.names()]
        return respond(openapi.document(ROUTES, configs, self.service.settings.max_records))


# (rule, methods, handler name, scope): the whole HTTP surface in one place. The scope a token
# needs (mlrm/credentials.py); None: open, so supervisors' probes work without one.
ROUTES: list[tuple[str, list[str], str, str | None]] = [
    ("/", ["GET"], "index", "admin"),
    ("/v1/health", ["GET"], "health", None),
    ("/openapi.json", ["GET"], "openapi_json", None),  # the shape of the API, no data
    ("/metrics", ["GET"], "metrics_text", "metrics"),  # as the ML service's: counts tell how the plant runs
    ("/v1/services", ["GET"], "index", "admin"),
    ("/v1/services/<name>", ["GET"], "describe", "admin"),
    ("/v1/services/<name>/samples", ["POST"], "samples", "ingest"),
    ("/v1/services/<name>/samples/stats", ["GET"], "stats", "ingest"),  # what a feeder needs to see its data
    ("/v1/services/<name>/samples", ["GET"], "list_samples", "admin"),  # the records themselves: plant data
    ("/v1/services/<name>/samples/quarantine", ["POST"], "quarantine", "admin"),
    ("/v1/services/<name>/samples/release", ["POST"], "release", "admin"),
    ("/v1/services/<name>/samples/delete", ["POST"], "delete_samples", "admin"),
    ("/v1/services/<name>/train", ["POST"], "train", "admin"),
    ("/v1/services/<name>/jobs", ["GET"], "jobs", "admin"),
    # An ML service's drift and performance figures, for training.triggers.drift and .performance
    ("/v1/services/<name>/monitors", ["PUT"], "put_monitors", "ingest"),
    ("/v1/services/<name>/monitors", ["GET"], "monitors", "admin"),
    ("/v1/services/<name>/versions", ["GET"], "versions", "admin"),
    ("/v1/services/<name>/rollback", ["POST"], "rollback", "admin"),
    # What a gateway that follows this service fetches, with the token it feeds samples with (handout.py).
    ("/v1/services/<name>/current", ["GET"], "current", "ingest"),
    ("/v1/services/<name>/versions/<int:version>/bundle", ["GET"], "bundle", "ingest"),
    ("/v1/services/<name>/versions/<int:version>/files/<file>", ["GET"], "version_file", "ingest"),
    ("/v1/jobs/<int:job_id>", ["GET"], "job", "admin"),
]


def create_app(settings: Settings, *, service: TrainingService | None = None) -> Flask:
    """Build the Flask app of a training service."""
    service = service or TrainingService(settings)
    metrics = service.metrics = service.metrics or TrainingMetrics()
    api = TrainingApi(service, metrics)
    app = Flask("training_service")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["training_service"] = service
    for rule, methods, name, _ in ROUTES:
        app.add_url_rule(rule, f"{name}:{rule}", getattr(api, name), methods=methods)
    scopes = {f"{name}:{rule}": scope for rule, _, name, scope in ROUTES}

    def learned_dir(view_args: dict[str, Any]) -> Path:
        return service.services.get(view_args["name"]).learned_dir if "name" in view_args else settings.config_root

    protect(app, guard_of(settings.tokens_file), scopes, learned_dir)

    handle_error = error_handler(
        lambda limit: (
            f"request body too large: the limit is {limit} bytes (training-service --max-body-bytes). Split the batch."
        )
    )
    app.register_error_handler(Exception, handle_error)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(endpoint).observe(time.perf_counter() - g.started)
        return response

    return app
