"""POST /v1/predict and /v1/models/{name}/predict without Flask's per-request machinery.

A WSGI middleware in front of the Flask app (`app.wsgi_app`): it answers a
predict request itself (read the body, decode with orjson, call the same
ServiceApi.answer as the Flask route, encode) and records the same metrics.

A request goes to Flask only while nothing has happened yet: another route,
a set that is not served or cannot answer (unusable, or /v1/predict while several are served),
a media type other than plain JSON, a body without a length or over the
limit, a token missing or without the predict scope (Flask's check answers
that 401/403 as on every route). Once the service has been called the
request is answered here, error or not, because calling it twice would buffer a stream's records twice and
count its predictions twice. Errors use the same decoder (codec.loads) and
the same failure-to-problem function (codec.problem_of) as the Flask error
handler, so the two paths cannot drift apart; tests/rest/test_fastroute.py
holds them equal.

Flask's request context, routing and Response object cost about as much as
a logistic regression's whole prediction; this path saves them on the one
route consumers call thousands of times a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from mlrm.core.answer import Answer
from mlrm.rest.codec import PROBLEM, dumps, loads, problem_of

if TYPE_CHECKING:
    from mlrm.rest.metrics import Metrics

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# The same function the Flask route calls: a decoded predict body -> the answer to encode.
Answerer = Callable[[Any], Answer]

# Whether a request's Authorization header may call the predict route (mlrm.credentials.Guard.allows).
Allows = Callable[[str | None], bool]

RULE = "/v1/predict"


def server_timing(compute_s: float, app_s: float) -> str:
    """A Server-Timing header value: `compute` is the core's predict (validation, encoding, model),
    `app` the whole answer in the app (decode, compute, encode); `mlrm bench` splits a round trip with them."""
    return f"compute;dur={compute_s * 1000:.3f}, app;dur={app_s * 1000:.3f}"


MODEL_RULE = "/v1/models/<name>/predict"
_PREFIX, _SUFFIX = "/v1/models/", "/predict"


@dataclass(frozen=True)
class Fast:
    """What the fast path needs of one served set: its name, its answerer, its body limit."""

    name: str
    answer: Answerer
    max_body: int


# The set a predict path names (None: /v1/predict, the only set), or None when Flask must answer.
Lookup = Callable[[str | None], Fast | None]


class _Route:
    """One (rule, set) the fast path answers, with its metric children looked up once
    (a labels() call costs microseconds per request)."""

    def __init__(self, rule: str, fast: Fast, metrics: Metrics) -> None:
        self.rule, self.fast, self.metrics = rule, fast, metrics
        self.where = f"POST {rule}"
        self.ok = metrics.requests.labels(rule, "POST", "200", fast.name)
        self.latency = metrics.latency.labels(rule, fast.name)

    def counter(self, status: int) -> Any:
        return (
            self.ok if status == 200 else self.metrics.requests.labels(self.rule, "POST", str(status), self.fast.name)
        )


class PredictRoute:
    """WSGI middleware: the fast path for POST /v1/predict and /v1/models/{name}/predict, Flask for everything else."""

    def __init__(self, app: WSGIApp, lookup: Lookup, metrics: Metrics, allows: Allows | None = None) -> None:
        self.app, self.lookup, self.metrics = app, lookup, metrics
        self.allows = allows
        self.default: _Route | None = None
        self.routes: dict[str, _Route] = {}  # only sets found: an unknown name is never kept

    def _route(self, path: str) -> _Route | None:
        if path == RULE:
            if self.default is None:
                fast = self.lookup(None)
                self.default = None if fast is None else _Route(RULE, fast, self.metrics)
            return self.default
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        name = path[len(_PREFIX) : -len(_SUFFIX)]
        route = self.routes.get(name)
        if route is None and name and "/" not in name:
            fast = self.lookup(name)
            if fast is not None:
                route = self.routes[name] = _Route(MODEL_RULE, fast, self.metrics)
        return route

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        route = self._route(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        length = environ.get("CONTENT_LENGTH") or ""
        if mimetype != "application/json" or not length.isdigit() or int(length) > route.fast.max_body:
            return self.app(environ, start_response)  # nothing done yet: Flask says what is wrong
        if self.allows is not None and not self.allows(environ.get("HTTP_AUTHORIZATION")):
            return self.app(environ, start_response)  # Flask's check answers 401/403 as on every route
        try:
            body = loads(environ["wsgi.input"].read(int(length)))
            computing = time.perf_counter()
            answer = route.fast.answer(body)
            compute = time.perf_counter() - computing
            payload = dumps(answer)
        except Exception as exc:  # every failure is answered here, as by Flask's handler
            error = problem_of(exc, route.where)
            return self._send(start_response, route, error.status, PROBLEM, dumps(error.problem()), started)
        timing = ("Server-Timing", server_timing(compute, time.perf_counter() - started))
        return self._send(start_response, route, 200, "application/json", payload, started, timing)

    def _send(
        self, start_response: StartResponse, route: _Route, status: int, content_type: str, payload: bytes,
        started: float, *extra: tuple[str, str],
    ) -> list[bytes]:  # fmt: skip
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(payload))), *extra],
        )
        route.counter(status).inc()
        route.latency.observe(time.perf_counter() - started)
        return [payload]
