"""Who may call which route, and the audit of admin actions, for any mlrm Flask app.

Both the ML service and the training service call `protect(app, ...)` with the
scopes of their ROUTES tables: a request to a route with a scope must carry a
token that has it (mlrm/credentials.py), checked before the handler runs, so
the handler never sees an unauthorised request. Every request that changes
something on an admin route is recorded in the config set's audit log, who
(the token's name), what, when, from where and how it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from mlrm.credentials import CHALLENGE, Guard, Refused
from mlrm.errors import RequestError
from mlrm.storage import audit

ADMIN = "admin"
# Where an action is recorded: the learned/ folder of the config set the request names (by its view args).
LearnedDir = Callable[[dict[str, Any]], Path]


def protect(app: Flask, guard: Guard, scopes: dict[str, str | None], learned_dir: LearnedDir) -> None:
    """Check every request against scopes (endpoint -> scope) and audit admin actions."""

    @app.before_request
    def _check() -> None:
        scope = scopes.get(request.endpoint or "")
        try:
            g.mlrm_who = guard.check(scope, request.headers.get("Authorization"))
        except Refused as exc:
            g.mlrm_who = exc.who or "unauthenticated"
            raise

    @app.after_request
    def _finish(response: Response) -> Response:
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = CHALLENGE
        if scopes.get(request.endpoint or "") == ADMIN and request.method != "GET":
            _record(response, learned_dir)
        return response


def _record(response: Response, learned_dir: LearnedDir) -> None:
    who = g.get("mlrm_who") or ("anonymous" if "mlrm_who" in g else "unauthenticated")
    try:
        folder = learned_dir(request.view_args or {})
    except RequestError:  # names no config set (404): nothing of one was changed
        return
    answer = response.get_json(silent=True) if (response.mimetype or "").endswith("json") else None
    audit.record(
        folder, str(who), f"{request.method} {request.path}", request.remote_addr or "?",
        status=response.status_code, answer=answer,
    )  # fmt: skip
