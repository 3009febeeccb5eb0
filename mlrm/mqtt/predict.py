"""Predictions over MQTT, without MQTT: payload bytes + topic -> messages to publish.

Payload in (JSON), on a topic matching `topics.predict_in`:

- one record: `{"id": "m-17", "timestamp": "...", "volume_pct": 98.5, ...}`
- a batch: `{"id": "b-3", "timestamp": "...", "instances": [{...}, {...}]}`

`id` and `timestamp` are optional and echoed. Every record is validated by
Service.predict, exactly as REST /v1/predict does. The answer goes to
`topics.predict_out` with the kept topic levels filled in:

- one record: `{"id", "timestamp", <kept levels>, "prediction": "OK",
  "probabilities": {...}, "model": {"name", "version"}, "took_ms": 1.9}`
- a batch: the same with `predictions` and `probabilities` as lists, in order.

A payload that cannot be answered goes to `topics.errors` as a problem body
(type, title, status, detail, errors[] with JSON pointers into the payload)
plus id, timestamp, kept levels and the topic it came on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mlrm.errors import RequestError
from mlrm.mqtt.messages import Handled, Outgoing, decode, encode, meta, problem_body, repoint
from mlrm.mqtt.topics import TopicTemplate
from mlrm.service import Service

log = logging.getLogger("mlrm.mqtt.predict")

_SINGULAR = {"predictions": "prediction", "probabilities": "probabilities", "scores": "score"}


class PredictHandler:
    """Answers measurements for one Service (see the module docstring for payloads)."""

    def __init__(
        self,
        service: Service,
        predict_in: TopicTemplate,
        predict_out: TopicTemplate,
        errors: TopicTemplate | None,
        *,
        max_payload: int = 1048576,
        clock: Any = time.perf_counter,
    ) -> None:
        self.service = service
        self.predict_in, self.predict_out, self.errors = predict_in, predict_out, errors
        self.max_payload = max_payload
        self._clock = clock

    @property
    def filter(self) -> str:
        """The subscription filter of predict_in."""
        return self.predict_in.filter(self.service.name)

    def __call__(self, topic: str, payload: bytes) -> Handled:
        return self.handle(topic, payload)

    def handle(self, topic: str, payload: bytes) -> Handled:
        """Answer one message: a prediction on predict_out, or a problem on errors."""
        started = self._clock()
        kept = self.predict_in.match(topic, self.service.name) or {}
        body: Any = None
        try:
            body = decode(payload, self.max_payload)
            instances, single = self._instances(body)
            try:
                answer = self.service.predict(instances)
            except RequestError as exc:
                raise repoint(exc, "/instances/0", "") if single else exc
        except RequestError as exc:
            return self._problem(exc, topic, kept, body, payload)
        out: dict[str, Any] = {**meta(body), **kept}
        for key, value in answer.items():
            if key == "model":
                continue
            if single and isinstance(value, list):
                out[_SINGULAR.get(key, key)] = value[0]
            else:
                out[key] = value
        out["model"] = answer["model"]
        out["took_ms"] = round((self._clock() - started) * 1000, 3)
        name = self.service.name
        return Handled([Outgoing(self.predict_out.render(name, kept), encode(out))])

    @staticmethod
    def _instances(body: Any) -> tuple[list[Any], bool]:
        """(records, single?) of a decoded payload; RequestError if it is neither shape."""
        if not isinstance(body, dict):
            raise RequestError(
                "Invalid message", 422,
                detail='expected a JSON object: one record {"feature": value, ...} or a batch {"instances": [...]}',
            )  # fmt: skip
        if "instances" not in body:
            return [{k: v for k, v in body.items() if k not in ("id", "timestamp")}], True
        unknown = [k for k in body if k not in ("instances", "id", "timestamp")]
        if unknown:
            raise RequestError(
                "Invalid message", 422,
                detail=f"unknown key '{unknown[0]}' at /; a batch has only 'instances', 'id' and 'timestamp'",
            )  # fmt: skip
        instances = body["instances"]
        if isinstance(instances, list) and not instances:
            raise RequestError("Invalid message", 422, detail="'instances' is empty; send at least one record")
        return instances, False

    def _problem(self, error: RequestError, topic: str, kept: dict[str, str], body: Any, payload: bytes) -> Handled:
        log.info("%s: rejected a message on %s: %s", self.service.name, topic, error.problem()["detail"])
        kind = "not-ready" if error.status == 503 else "invalid"
        if self.errors is None:
            return Handled([], error=kind)
        excerpt = payload if error.kind == "malformed-json" else None
        message = problem_body(error, topic=topic, kept=kept, echo=meta(body), payload=excerpt)
        return Handled([Outgoing(self.errors.render(self.service.name, kept), encode(message))], error=kind)
