"""Labels on the samples topic, scored against what the ML service predicted for the same ids.

The ML service's MQTT bridge subscribes to `topics.training_in` as well, when
it is set, read-only: it never stores a sample (the training service does,
from its own subscription under its own client id, so both get every
message) and never publishes. A sample message that carries `"ids"` beside
its records (mlrm.mqtt.samples: one per record) scores the predictions kept
for those ids (an MQTT predict message or REST /v1/predict sent with ids)
through PerformanceMonitor.score, the call REST /v1/feedback makes. As there,
only records that would be stored count: they are validated as feedback is
(mlrm.training.trainer.dataset), and a record the training service rejects
scores nothing. A message without ids scores nothing; one the training
service rejects as a whole (not JSON, wrong shape, bad ids) neither, and it
is not reported here: the training service answers it on the errors topic,
once.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from mlrm.config.topics import TopicTemplate
from mlrm.core.service import Service
from mlrm.errors import RequestError
from mlrm.mqtt.messages import Handled, decode
from mlrm.mqtt.samples import label_ids, records_of
from mlrm.training.trainer import dataset

log = logging.getLogger("mlrm.mqtt.scoring")


class ScoringHandler:
    """Scores the predictions named by the ids of sample messages on training_in, for one Service."""

    def __init__(self, service: Service, training_in: TopicTemplate, *, max_payload: int = 1048576) -> None:
        self.service, self.training_in, self.max_payload = service, training_in, max_payload

    @property
    def filter(self) -> str:
        """The subscription filter of training_in (the training service subscribes to the same)."""
        return self.training_in.filter(self.service.name)

    def handle(self, topic: str, payload: bytes) -> Handled:
        """Score one sample message's labels; nothing is published, and the message is always acknowledged."""
        try:
            body = decode(payload, self.max_payload)
            records, single = records_of(body)
            ids = label_ids(body, records, single)
        except RequestError as exc:  # the training service reports it on the errors topic
            log.debug("%s: not scoring the samples on %s: %s", self.service.name, topic, exc.problem()["detail"])
            return Handled([])
        if ids is None or self.service.config.target is None:
            return Handled([])
        try:
            scored = self.score(ids, records)
        except (OSError, sqlite3.Error) as exc:  # a cache of figures: nothing to redeliver for
            log.error("%s: cannot score the labels on %s: %s", self.service.name, topic, exc)
            return Handled([], error="internal")
        log.debug("%s: %d label(s) on %s scored %d prediction(s)", self.service.name, len(ids), topic, scored)
        return Handled([])

    def score(self, ids: list[str], records: list[Any]) -> int:
        """Score the predictions of ids with the records that pass feedback's validation; how many matched."""
        accepted = dataset(self.service.config, records, pointer="/records").accepted
        return self.service.performance.score([ids[i] for i in accepted], [records[i] for i in accepted])
