"""Checks of the `mqtt` section of service.yaml (one of loader.SECTION_CHECKS).

Every problem names the key and the fix. Used by the MQTT transport too (parse_broker, IN_TOPICS):
the transport imports config, never the other way round.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mlrm.config.topics import TemplateError, TopicTemplate, check_out, parse

KeyPath = tuple[Any, ...]
Report = Callable[[KeyPath, str], None]

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
IN_TOPICS = ("predict_in", "training_in")
CLIENT_ID_FIELDS = ("service", "role", "hostname")


def parse_broker(url: str) -> tuple[bool, str, int]:
    """'mqtts://host:8883' -> (tls, host, port); ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"'{url}' is not an MQTT broker URL. Write mqtt://host:1883, or mqtts://host:8883 for TLS.")
    if parts.username or parts.password:
        raise ValueError(
            "do not put a user name or password in the URL (it would be stored in service.yaml). "
            "Use username_env/password_env or username_file/password_file."
        )
    if not parts.hostname:
        raise ValueError(f"'{url}' names no host. Write e.g. {parts.scheme}://localhost:{DEFAULT_PORTS[parts.scheme]}.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"'{url}' has a path or query; a broker URL is only scheme://host:port.")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"'{url}' has an invalid port: use a number from 1 to 65535.") from None
    return parts.scheme == "mqtts", parts.hostname, port


def _fields(text: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]


def check_mqtt(raw: dict[str, Any], report: Report) -> None:
    """Semantic checks of the mqtt section (one of loader.SECTION_CHECKS)."""
    section = raw.get("mqtt")
    if not isinstance(section, dict):
        return
    at = ("mqtt",)
    try:
        tls, _host, _port = parse_broker(section["broker"])
    except ValueError as exc:
        report((*at, "broker"), str(exc))
        tls = True
    tls_given = any((section.get("tls") or {}).get(k) for k in ("ca_file", "cert_file", "key_file", "insecure"))
    if tls_given and not tls:
        report(
            (*at, "tls"), "tls settings apply to an mqtts:// broker. Write broker: mqtts://host:8883, or remove tls."
        )
    tls_section = section.get("tls") or {}
    if tls_section.get("key_file") and not tls_section.get("cert_file"):
        report((*at, "tls", "key_file"), "key_file belongs to a client certificate: add cert_file too.")
    for what in ("username", "password"):
        if f"{what}_env" in section and f"{what}_file" in section:
            report((*at, f"{what}_file"), f"give the {what} one way: {what}_env or {what}_file, not both.")
    has_user = "username_env" in section or "username_file" in section
    has_password = "password_env" in section or "password_file" in section
    if has_password and not has_user:
        report(at, "a password needs a user name too: add username_env or username_file.")
    for key, allowed in (("client_id", CLIENT_ID_FIELDS), ("outbox", ("service", "role"))):
        text = section["client_id"] if key == "client_id" else section["outbox"]["path"]
        where = (*at, key) if key == "client_id" else (*at, "outbox", "path")
        try:
            unknown = [f for f in _fields(text) if f not in allowed]
        except ValueError:
            unknown = ["?"]
        if unknown:
            report(where, f"'{text}' may use only {', '.join('{' + a + '}' for a in allowed)} (and no other braces).")
    if section["topics"].get("training_in") is not None and "role" not in _safe_fields(section["client_id"]):
        # The bridge (role predict) and the training service (role training) both read training_in:
        # with one client id the broker would hand the id back and forth, disconnecting each in turn.
        report((*at, "client_id"), f"'{section['client_id']}' must use {{role}} when training_in is set: the ML "
               "service's bridge and the training service both connect and need different client ids, "
               "e.g. the default client_id: mlrm-{hostname}-{service}-{role}.")  # fmt: skip
    _check_topics(raw, section["topics"], report)


def _safe_fields(text: str) -> list[str]:
    try:
        return list(_fields(text))
    except ValueError:
        return []


def _check_topics(raw: dict[str, Any], topics: dict[str, Any], report: Report) -> None:
    at = ("mqtt", "topics")
    parsed: dict[str, TopicTemplate] = {}
    for key, value in topics.items():
        if value is None:
            continue
        try:
            parsed[key] = parse(value, inbound=key in IN_TOPICS)
        except TemplateError as exc:
            report((*at, key), str(exc))
    if topics.get("predict_in") is not None and topics.get("predict_out") is None:
        report((*at, "predict_out"), "predict_in is set, so predictions need a topic: set predict_out, "
               "or set predict_in: null to turn predictions over MQTT off.")  # fmt: skip
    sources = {k: parsed[k] for k in IN_TOPICS if k in parsed}
    if "predict_out" in parsed and "predict_in" in parsed:
        problem = check_out(parsed["predict_out"], {"predict_in": parsed["predict_in"]})
        if problem:
            report((*at, "predict_out"), problem)
    if "errors" in parsed and sources:
        problem = check_out(parsed["errors"], sources)
        if problem:
            report((*at, "errors"), problem)
    if topics.get("predict_in") is not None or topics.get("training_in") is not None:
        for name in raw.get("inputs", {}):
            if name in ("id", "timestamp", "instances", "records", "ids"):
                report(("inputs", name), f"'{name}' is a reserved key of MQTT payloads (see docs/mqtt.md). "
                       "Rename the input, or remove the mqtt section.")  # fmt: skip
