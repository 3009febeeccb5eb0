"""Predictions over MQTT, without MQTT: payload bytes + topic -> messages to publish.

Payload in (JSON), on a topic matching `topics.predict_in`:

- one record: `{"id": "m-17", "timestamp": "...", "volume_pct": 98.5, ...}`
- a batch: `{"id": "b-3", "timestamp": "...", "instances": [{...}, {...}]}`

`id` and `timestamp` are optional and echoed. `"ids": ["r1", ...]` beside the
records (one per record; a list of one for a one-record message) makes the
predictions scoreable by a later label with the same id, exactly as `ids` on
REST /v1/predict: they are checked first (a problem at `/ids/N` otherwise)
and kept through the same PerformanceMonitor.remember. Every record is validated by
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
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, cast

from mlrm.config.topics import TopicTemplate
from mlrm.core.answer import Answer
from mlrm.core.performance import ids_of
from mlrm.core.service import Service
from mlrm.errors import RequestError
from mlrm.mqtt.messages import Handled, Inbound, Outgoing, decode, encode, meta, problem_body, repoint

log = logging.getLogger("mlrm.mqtt.predict")

_SINGULAR = {"predictions": "prediction", "probabilities": "probabilities", "scores": "score"}


@dataclass
class _Parsed:
    """A message whose payload has the right shape; its records are not checked yet."""

    index: int
    message: Inbound
    kept: dict[str, str]
    body: Any
    instances: Any
    single: bool
    ids: list[str] | None = None  # what each record's prediction is kept under, for a later label


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

    def handle(self, topic: str, payload: bytes) -> Handled:
        """Answer one message: a prediction on predict_out, or a problem on errors."""
        return self.handle_many([Inbound(topic, payload, self._clock())])[0]

    def handle_many(self, messages: list[Inbound]) -> list[Handled]:
        """Answer several messages, one Handled each, in order.

        Their records go to the model in as few Service.predict calls as limits.max_instances
        allows (a burst costs about one call); if a call rejects some record, every message is
        predicted alone, so each problem is reported against its own message.
        """
        results: list[Handled | None] = [None] * len(messages)
        parsed: list[_Parsed] = []
        for i, message in enumerate(messages):
            kept = self.predict_in.match(message.topic, self.service.name) or {}
            body: Any = None
            try:
                body = decode(message.payload, self.max_payload)
                instances, single = self._instances(body)
                n = len(instances) if isinstance(instances, list) else 0
                ids = ids_of(body, None if single else "instances", n) if n else None
            except RequestError as exc:
                results[i] = self._problem(exc, message, kept, body)
                continue
            parsed.append(_Parsed(i, message, kept, body, instances, single, ids))
        for group in self._groups(parsed):
            for item, outcome in zip(group, self._predict(group), strict=True):
                if isinstance(outcome, RequestError):
                    results[item.index] = self._problem(outcome, item.message, item.kept, item.body)
                else:
                    results[item.index] = self._answer(item, outcome)
        return [r if r is not None else Handled(error="internal") for r in results]

    def _groups(self, parsed: list[_Parsed]) -> list[list[_Parsed]]:
        limit = self.service.config.limits.max_instances
        groups: list[list[_Parsed]] = []
        size = limit + 1
        for item in parsed:
            n = len(item.instances) if isinstance(item.instances, list) else limit + 1
            if size + n > limit or n > limit:
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += n
        return groups

    def _predict(self, group: list[_Parsed]) -> list[Answer | RequestError]:
        if len(group) > 1:
            try:
                answer = self.service.predict([row for item in group for row in item.instances])
            except RequestError:
                pass  # find out which message is at fault, one by one
            else:
                self._remember(group, answer)
                out: list[Answer | RequestError] = []
                offset = 0
                for item in group:
                    n = len(item.instances)
                    part = {k: v[offset : offset + n] if isinstance(v, list) else v for k, v in answer.items()}
                    out.append(cast(Answer, part))  # each list cut to this message's instances
                    offset += n
                return out
        results: list[Answer | RequestError] = []
        for item in group:
            try:
                answer = self.service.predict(item.instances)
            except RequestError as exc:
                results.append(repoint(exc, "/instances/0", "") if item.single else exc)
                continue
            self._remember([item], answer)
            results.append(answer)
        return results

    def _remember(self, items: list[_Parsed], answer: Answer) -> None:
        """Keep the predictions of the records sent with ids (REST's call), so a later label scores them."""
        if not any(item.ids for item in items):
            return
        ids: list[str | None] = []
        for item in items:
            ids.extend(item.ids or [None] * len(item.instances))
        try:
            self.service.performance.remember(ids, answer)
        except (OSError, sqlite3.Error) as exc:  # a cache of figures: the answers still go out
            log.error("%s: cannot keep predictions for scoring: %s", self.service.name, exc)

    def _answer(self, item: _Parsed, answer: Answer) -> Handled:
        out: dict[str, Any] = {**meta(item.body), **item.kept}
        for key, value in answer.items():
            if key == "model":
                continue
            if item.single and isinstance(value, list):
                out[_SINGULAR.get(key, key)] = value[0]
            else:
                out[key] = value
        out["model"] = answer["model"]
        out["took_ms"] = round((self._clock() - item.message.received) * 1000, 3)
        topic = self.predict_out.render(self.service.name, item.kept)
        return Handled([Outgoing(topic, encode(out))])

    @staticmethod
    def _instances(body: Any) -> tuple[list[Any], bool]:
        """(records, single?) of a decoded payload; RequestError if it is neither shape."""
        if not isinstance(body, dict):
            raise RequestError(
                "Invalid message", 422,
                detail='expected a JSON object: one record {"feature": value, ...} or a batch {"instances": [...]}',
            )  # fmt: skip
        if "instances" not in body:
            return [{k: v for k, v in body.items() if k not in ("id", "timestamp", "ids")}], True
        unknown = [k for k in body if k not in ("instances", "ids", "id", "timestamp")]
        if unknown:
            raise RequestError(
                "Invalid message", 422,
                detail=f"unknown key '{unknown[0]}' at /; a batch has only 'instances', 'ids', 'id' and 'timestamp'",
            )  # fmt: skip
        instances = body["instances"]
        if isinstance(instances, list) and not instances:
            raise RequestError("Invalid message", 422, detail="'instances' is empty; send at least one record")
        return instances, False

    def _problem(self, error: RequestError, message: Inbound, kept: dict[str, str], body: Any) -> Handled:
        log.info("%s: rejected a message on %s: %s", self.service.name, message.topic, error.problem()["detail"])
        kind = "not-ready" if error.status == 503 else "invalid"
        if self.errors is None:
            return Handled([], error=kind)
        excerpt = message.payload if error.kind == "malformed-json" else None
        problem = problem_body(error, topic=message.topic, kept=kept, echo=meta(body), payload=excerpt)
        return Handled([Outgoing(self.errors.render(self.service.name, kept), encode(problem))], error=kind)
