"""JSON in and out of Flask, with orjson and problem+json errors."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Request, Response

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
