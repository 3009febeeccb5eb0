"""POST /v1/predict without Flask's per-request machinery.

A WSGI middleware in front of the Flask app (`app.wsgi_app`): it answers a
well-formed predict request itself (read the body, decode with orjson, call
the same Api.answer as the Flask route, encode) and records the same
metrics. Anything else goes to Flask untouched, and so does every request
that fails, with its body put back: Flask's route and error handler answer
it exactly as they always have, so errors cannot drift between the two paths.

Flask's request context, routing and Response object cost about as much as
a logistic regression's whole prediction; this path saves them on the one
route consumers call thousands of times a minute.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from mlrm.rest.app import Api

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

RULE = "/v1/predict"


class PredictRoute:
    """WSGI middleware: the fast path for POST /v1/predict, Flask for everything else."""

    def __init__(self, app: WSGIApp, api: Api, max_body: int) -> None:
        self.app, self.api, self.max_body = app, api, max_body
        # Label children looked up once (a labels() call costs microseconds per request).
        self.ok = api.metrics.requests.labels(RULE, "POST", "200")
        self.latency = api.metrics.latency.labels(RULE)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != RULE or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        started = time.perf_counter()
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        length = environ.get("CONTENT_LENGTH") or ""
        if mimetype != "application/json" or not length.isdigit() or int(length) > self.max_body:
            return self.app(environ, start_response)  # Flask says what is wrong
        data = environ["wsgi.input"].read(int(length))
        try:
            payload = orjson.dumps(self.api.answer(orjson.loads(data)), option=orjson.OPT_SERIALIZE_NUMPY)
        except Exception:
            environ["wsgi.input"] = io.BytesIO(data)
            return self.app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        self.ok.inc()
        self.latency.observe(time.perf_counter() - started)
        return [payload]
