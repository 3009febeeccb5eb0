"""Labelled training samples over MQTT, handed to a durable sink before the PUBACK.

Payload (JSON) on a topic matching `topics.training_in`:

- one record: `{"id": "s-17", "volume_pct": 98.5, ..., "result": "OK"}`
- a batch: `{"id": "s-18", "records": [{...}, {...}]}`

`id` and `timestamp` are message metadata and are not passed on; nor is
`"ids": [...]` (one per record, a list of one for a one-record message): the
ids of the predictions the labels score (the ML service's MQTT bridge reads
this topic too and scores them, mlrm.mqtt.scoring). Ids that are not one
non-empty string or integer per record are a problem like any bad field,
and nothing of the message is stored (as on REST /v1/feedback). The records
go to `sink(service_name, records, message_id)`, which must validate them and
commit them durably before it returns (training_service.mqtt_samples wires
it to the training store). Only then is the message acknowledged, so a crash before the
commit gets the message redelivered by the broker (QoS 1, kept session).

A redelivered message must be stored once: the sink dedupes by message_id,
which is `"<topic> <id>"` when the payload has an id, else
`"sha256:<hex of topic, NUL, payload>"` (then two identical samples on one
topic count once: send an id if that can happen). The sink raises
RequestError (or DataError) for records it rejects: the problem goes to
`topics.errors` and the message is acknowledged (resending would not help);
any other exception means "not stored": no ack, redelivery.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from mlrm.config.topics import TopicTemplate
from mlrm.core.performance import ids_of
from mlrm.errors import DataError, RequestError
from mlrm.mqtt.messages import META_KEYS, Handled, Outgoing, decode, encode, meta, problem_body, repoint

log = logging.getLogger("mlrm.mqtt.samples")

Sink = Callable[[str, list[dict[str, Any]], str], None]


def message_id(topic: str, payload: bytes, body: Any) -> str:
    """The dedupe key of a sample message (see the module docstring)."""
    if isinstance(body, dict) and isinstance(body.get("id"), (str, int)) and not isinstance(body.get("id"), bool):
        return f"{topic} {body['id']}"
    return "sha256:" + hashlib.sha256(topic.encode("utf-8") + b"\0" + payload).hexdigest()


def records_of(body: Any) -> tuple[list[Any], bool]:
    """(records, single?) of a decoded sample payload; RequestError if it is neither shape."""
    if not isinstance(body, dict):
        raise RequestError(
            "Invalid message", 422,
            detail='expected a JSON object: one record {"feature": value, ..., "<target>": label} '
            'or a batch {"records": [...]}',
        )  # fmt: skip
    if "records" not in body:
        return [{k: v for k, v in body.items() if k not in (*META_KEYS, "ids")}], True
    unknown = [k for k in body if k not in ("records", "ids", *META_KEYS)]
    if unknown:
        raise RequestError(
            "Invalid message", 422, detail=f"unknown key '{unknown[0]}' at /; a batch has only 'records', 'ids', "
            "'id' and 'timestamp'",
        )  # fmt: skip
    records = body["records"]
    if not isinstance(records, list) or not records:
        raise RequestError("Invalid message", 422, detail="'records' must be a non-empty array of objects")
    return records, False


def label_ids(body: dict[str, Any], records: list[Any], single: bool) -> list[str] | None:
    """The prediction ids beside a sample message's records (None if it has none); RequestError if malformed."""
    return ids_of(body, None if single else "records", len(records))


class SampleHandler:
    """Hands labelled records from training_in to sink; see the module docstring."""

    def __init__(
        self,
        service: str,
        training_in: TopicTemplate,
        errors: TopicTemplate | None,
        sink: Sink,
        *,
        max_payload: int = 1048576,
    ) -> None:
        self.service, self.training_in, self.errors, self.sink = service, training_in, errors, sink
        self.max_payload = max_payload

    @property
    def filter(self) -> str:
        return self.training_in.filter(self.service)

    def handle(self, topic: str, payload: bytes) -> Handled:
        """Store one message's records through the sink; ack=False when the sink failed."""
        kept = self.training_in.match(topic, self.service) or {}
        body: Any = None
        try:
            body = decode(payload, self.max_payload)
            records, single = records_of(body)
            label_ids(body, records, single)  # checked, not stored: they are for scoring only
            try:
                self.sink(self.service, records, message_id(topic, payload, body))
            except DataError as exc:
                raise RequestError("Invalid samples", 422, detail=str(exc)) from None
            except RequestError as exc:
                raise (repoint(exc, "/records/0", "") if single else exc) from None
        except RequestError as exc:
            return self._problem(exc, topic, kept, body, payload)
        except Exception as exc:  # the store failed: not stored, let the broker redeliver
            log.error("%s: could not store samples from %s, will be redelivered: %s", self.service, topic, exc)
            return Handled([], ack=False, error="sink")
        return Handled([])

    def _problem(self, error: RequestError, topic: str, kept: dict[str, str], body: Any, payload: bytes) -> Handled:
        log.info("%s: rejected samples on %s: %s", self.service, topic, error.problem()["detail"])
        if self.errors is None:
            return Handled([], error="invalid")
        excerpt = payload if error.kind == "malformed-json" else None
        message = problem_body(error, topic=topic, kept=kept, echo=meta(body), payload=excerpt)
        return Handled([Outgoing(self.errors.render(self.service, kept), encode(message))], error="invalid")


def attach(client: Any, sink: Sink, *, max_payload: int | None = None) -> SampleHandler:
    """Route the client's training_in topic to sink (call before client.start()).

    client: an MqttClient made with role 'training'; max_payload defaults to the
    config set's limits.max_body_bytes. Returns the handler.
    """
    s = client.settings
    training_in = s.topic("training_in")
    if training_in is None:
        raise ValueError("mqtt.topics.training_in is null: there is no topic to read samples from")
    limit = s.max_payload if max_payload is None else max_payload
    handler = SampleHandler(s.service, training_in, s.topic("errors"), sink, max_payload=limit)
    client.route(handler.filter, handler.handle, "training")
    return handler
