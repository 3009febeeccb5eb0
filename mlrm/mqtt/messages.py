"""Payloads in and out of MQTT, shared by the predict and samples handlers.

Nothing here knows paho: a handler gets (topic, payload bytes) and returns a
Handled: the messages to publish and whether the input may be acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from mlrm.errors import FieldError, RequestError
from mlrm.storage.mqtt_outbox import Outgoing

# Keys of an incoming payload that are about the message, not features.
META_KEYS = ("id", "timestamp")
EXCERPT_BYTES = 200


@dataclass(frozen=True)
class Inbound:
    """One received message; received is time.perf_counter() when it arrived."""

    topic: str
    payload: bytes
    received: float = 0.0


@dataclass
class Handled:
    """What a handler made of one message: messages to publish, and whether to ack it.

    ack=False means "not stored, let the broker deliver it again" (QoS 1/2).
    """

    messages: list[Outgoing] = field(default_factory=list)
    ack: bool = True
    error: str | None = None  # kind of problem, for metrics ('invalid', 'internal', ...)


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def decode(payload: bytes, max_bytes: int) -> Any:
    """JSON from a payload; RequestError naming the problem (too large, not JSON)."""
    if len(payload) > max_bytes:
        raise RequestError(
            "Payload too large", 413,
            detail=f"the payload has {len(payload)} bytes; the limit is {max_bytes} (limits.max_body_bytes)",
            kind="payload-too-large",
        )  # fmt: skip
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            "Malformed JSON", 400, errors=[FieldError("", f"not valid JSON: {exc}")], kind="malformed-json"
        ) from None


def meta(body: Any) -> dict[str, Any]:
    """The id and timestamp of a decoded payload, to echo in answers and errors."""
    if not isinstance(body, dict):
        return {}
    return {k: body[k] for k in META_KEYS if k in body}


def problem_body(
    error: RequestError, *, topic: str, kept: dict[str, str], echo: dict[str, Any], payload: bytes | None = None
) -> dict[str, Any]:
    """An error message: the REST problem body plus what identifies the input."""
    body: dict[str, Any] = {**echo, **kept, "topic": topic, **error.problem()}
    body.pop("error", None)  # REST adds it for Open Inference Protocol clients; here 'detail' says it
    if payload is not None:
        body["payload"] = payload[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return body


def repoint(error: RequestError, old: str, new: str) -> RequestError:
    """The same error with JSON pointers under old moved to new (e.g. /instances/0 -> '')."""
    if not error.errors:
        return error
    errors = [
        FieldError(new + e.pointer[len(old):] if e.pointer == old or e.pointer.startswith(old + "/") else e.pointer,
                   e.detail)
        for e in error.errors
    ]  # fmt: skip
    detail = error.detail if error.detail else ""
    return RequestError(error.title, error.status, detail=detail, errors=errors, kind=error.kind)
