"""JSON in and out of Flask, with orjson and problem+json errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from flask import Request, Response, request
from werkzeug.exceptions import HTTPException

from mlrm.errors import FieldError, RequestError

PROBLEM = "application/problem+json"


def decode(request: Request) -> Any:
    """The request body as JSON; RequestError (400/415) naming what is wrong."""
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise RequestError(
            "Unsupported media type", 415, detail=f"send Content-Type: application/json, not {mimetype}",
            kind="unsupported-media-type",
        )
    data = request.get_data(cache=False)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            "Malformed JSON", 400, errors=[FieldError("", f"not valid JSON: {exc}")], kind="malformed-json"
        ) from None


def respond(body: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status=status, mimetype=mimetype)


def problem(error: RequestError) -> Response:
    return respond(error.problem(), error.status, PROBLEM)


def error_handler(too_large: Callable[[int | None], str]) -> Callable[[Exception], Response]:
    """An app's one error handler: every failure becomes a problem+json body.

    too_large(limit) says, for a 413, which setting limits the body and how to fix it.
    """
    log = logging.getLogger("mlrm.rest")

    def handle(error: Exception) -> Response:
        if isinstance(error, RequestError):
            return problem(error)
        if isinstance(error, HTTPException):
            code = error.code or 500
            detail = too_large(request.max_content_length) if code == 413 else error.description or error.name
            return problem(RequestError(error.name, code, detail=detail, kind=error.name.lower().replace(" ", "-")))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(RequestError("Internal error", 500, detail=f"{type(error).__name__}: {error}", kind="internal"))

    return handle
