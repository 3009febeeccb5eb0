"""JSON in and out of Flask, with orjson and problem+json errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from flask import Request, Response, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from mlrm.errors import FieldError, RequestError

PROBLEM = "application/problem+json"


def decode(request: Request) -> Any:
    """The request body as JSON; RequestError (400/415) naming what is wrong."""
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise RequestError(
            "Unsupported media type",
            415,
            detail=f"send Content-Type: application/json, not {mimetype}",
            kind="unsupported-media-type",
        )
    return loads(body_of(request))


def body_of(request: Request) -> bytes:
    """The whole body, however it arrives; 413 (RequestEntityTooLarge) past request.max_content_length.

    Werkzeug refuses a Content-Length over the limit before reading, but a chunked body, under a
    server that sets wsgi.input_terminated (gunicorn does), it only cuts at the limit: the rest was
    never looked at, and a too-large CSV post was stored truncated, its last value cut short.
    """
    limit = request.max_content_length
    if limit is None or request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=False)
    return read_at_most(request.environ["wsgi.input"], limit)


def read_at_most(stream: Any, limit: int) -> bytes:
    """All of stream, or RequestEntityTooLarge once a byte past limit arrives (what follows is not read)."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = stream.read(limit + 1 - size)  # one byte more than allowed tells "ends at the limit" from "goes on"
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
    raise RequestEntityTooLarge()


def loads(data: bytes) -> Any:
    """A JSON body; RequestError (400) if it is not JSON. (Also used by mlrm.rest.fastroute.)"""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            "Malformed JSON", 400, errors=[FieldError("", f"not valid JSON: {exc}")], kind="malformed-json"
        ) from None


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def respond(body: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(dumps(body), status=status, mimetype=mimetype)


def problem(error: RequestError) -> Response:
    return respond(error.problem(), error.status, PROBLEM)


def error_handler(too_large: Callable[[int | None], str]) -> Callable[[Exception], Response]:
    """An app's one error handler: every failure becomes a problem+json body.

    too_large(limit) says, for a 413, which setting limits the body and how to fix it.
    """

    def handle(error: Exception) -> Response:
        return problem(
            problem_of(error, f"{request.method} {request.path}", lambda: too_large(request.max_content_length))
        )

    return handle


def problem_of(error: Exception, where: str, too_large: Callable[[], str] | None = None) -> RequestError:
    """Any failure as the RequestError whose problem body answers it; an unexpected one is logged.

    The one place a failure becomes a problem, shared by the error handler and
    mlrm.rest.fastroute, so both paths answer every error alike.
    """
    if isinstance(error, RequestError):
        return error
    if isinstance(error, (ParseException, NoMoreData)):
        # gunicorn reads a chunked body as the app reads it, so a bad chunk-size line
        # surfaces here, inside the app, and is the client's fault.
        return RequestError(
            "Malformed body", 400, kind="malformed-body", detail=f"the request body could not be read ({error}): "
            "send chunks as a hexadecimal size line, CRLF, the bytes, CRLF, and a last chunk of size 0; "
            "or send a Content-Length instead of Transfer-Encoding: chunked",
        )  # fmt: skip
    if isinstance(error, HTTPException):
        code = error.code or 500
        detail = too_large() if code == 413 and too_large else error.description or error.name
        return RequestError(error.name, code, detail=detail, kind=error.name.lower().replace(" ", "-"))
    logging.getLogger("mlrm.rest").error("unhandled error on %s", where, exc_info=error)
    return RequestError("Internal error", 500, detail=f"{type(error).__name__}: {error}", kind="internal")
