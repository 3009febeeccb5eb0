"""Handles received messages off paho's thread, in batches, and acks each after its answer is stored.

paho's on_message only queues (Receiver.submit). A worker thread takes what
has queued up (at most max_batch; with QoS 1 the broker's in-flight window
bounds it), hands it to the route's handler in one call (so a burst of
measurements costs one model call), commits every answer to the outbox in one
transaction, and only then sends the PUBACKs. An ack is sent only on the
connection the message came on: after a reconnect the broker redelivers what
was not acknowledged (kept session), so a stale ack is left out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlrm.mqtt.messages import Handled, Inbound
from mlrm.mqtt.telemetry import Telemetry
from mlrm.storage.mqtt_outbox import MqttOutbox, OutboxFull

log = logging.getLogger("mlrm.mqtt")

BatchHandler = Callable[[list[Inbound]], list[Handled]]


@dataclass(frozen=True)
class Route:
    """Messages matching filter go to handle (a list of messages -> one Handled each)."""

    filter: str
    handle: BatchHandler
    name: str


@dataclass(frozen=True)
class Pending:
    route: Route
    message: Inbound
    mid: int
    qos: int
    generation: int


class Receiver:
    """The handling thread of one MqttClient."""

    def __init__(
        self,
        outbox: MqttOutbox,
        telemetry: Telemetry,
        *,
        qos: int,
        ack: Callable[[int, int], object],
        not_stored: Callable[[], None],
        stored: Callable[[], None],
        max_batch: int = 100,
        capacity: int = 1000,
    ) -> None:
        self.outbox, self.telemetry, self.qos = outbox, telemetry, qos
        self._ack, self._not_stored, self._stored = ack, not_stored, stored
        self.max_batch = max_batch
        # Bounded: with QoS 0 nothing else limits a flood, and a full queue blocks paho's thread (TCP backpressure).
        self._queue: queue.Queue[Pending] = queue.Queue(capacity)
        self.generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlrm-mqtt-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in hand; what is still queued is not acked, so the broker keeps it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def new_connection(self) -> None:
        self.generation += 1

    def submit(self, route: Route, message: Inbound, mid: int, qos: int) -> None:
        """Queue a received message (paho's thread)."""
        self._queue.put(Pending(route, message, mid, qos, self.generation))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            start = 0
            for i in range(1, len(batch) + 1):  # contiguous runs of one route, in arrival order
                if i == len(batch) or batch[i].route is not batch[start].route:
                    self.process(batch[start:i])
                    start = i

    def process(self, batch: list[Pending]) -> None:
        """Handle, store and ack one run of messages of one route."""
        route = batch[0].route
        try:
            results = route.handle([p.message for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{route.name} answered {len(results)} of {len(batch)} messages")
        except Exception as exc:  # a bug in a handler must not stop the subscriber
            log.exception("%s: handler failed on %d message(s)", route.name, len(batch))
            self.telemetry.error("internal", f"{type(exc).__name__}: {exc}")
            results = [Handled([], ack=True) for _ in batch]
        stored = True
        messages = [m for r in results for m in r.messages]
        try:
            self.outbox.put(messages, self.qos)
        except OutboxFull as exc:
            self.telemetry.error("outbox-full", str(exc))
        except Exception as exc:  # disk full, I/O error: keep the inputs, the broker has them
            log.error("cannot store the answers to %d message(s): %s", len(batch), exc)
            self.telemetry.error("outbox", f"{type(exc).__name__}: {exc}")
            stored = False
        if messages:
            self._stored()
        now = time.perf_counter()
        for pending, result in zip(batch, results, strict=True):
            if result.error:
                self.telemetry.error(result.error)
            self.telemetry.message_in(now - pending.message.received)
            if pending.qos == 0:
                continue
            if not (stored and result.ack):
                self._not_stored()
            elif pending.generation == self.generation:
                self._ack(pending.mid, pending.qos)
