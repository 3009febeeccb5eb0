"""Sends the outbox through paho: in order, a window at a time, removed only when acknowledged.

A message is handed to paho at most once per process: paho keeps what it
was given (QoS 1/2) across reconnects and resends it itself, so after a
reconnect new messages wait until those resends are acknowledged, and the
order holds across outages. What paho never confirmed stays in the outbox
and goes out again after a restart (at least once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from mlrm.mqtt.telemetry import Telemetry
from mlrm.storage.mqtt_outbox import MqttOutbox

log = logging.getLogger("mlrm.mqtt")


class Sender:
    """The outbox-draining thread of one MqttClient."""

    def __init__(
        self,
        paho: mqtt.Client,
        outbox: MqttOutbox,
        telemetry: Telemetry,
        *,
        window: int = 20,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.paho, self.outbox, self.telemetry, self.window = paho, outbox, telemetry, window
        self.on_tick = on_tick
        self._lock = threading.Lock()
        self._handed: dict[int, int] = {}  # paho mid -> outbox seq, not yet acknowledged
        self._early: set[int] = set()  # mids acknowledged before publish() returned
        self._done: list[int] = []  # seqs acknowledged, to remove from the outbox
        self._last_handed = 0
        self._hold = False
        self._connected = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tasks: list[Callable[[], None]] = []  # run every round (e.g. a due reconnect)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlrm-mqtt-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self._flush_done()

    def wake(self) -> None:
        self._wake.set()

    def busy(self) -> bool:
        """Messages are in flight, or waiting while we could send them."""
        with self._lock:
            return bool(self._handed) or (self._connected and len(self.outbox) > len(self._done))

    # -- from paho callbacks -----------------------------------------------------

    def connected(self, qos: int) -> None:
        with self._lock:
            if qos == 0 and self._handed:
                # paho drops unsent QoS 0 packets on reconnect: send them again from the outbox.
                self._last_handed = min(self._handed.values()) - 1
                self._handed.clear()
            self._hold = bool(self._handed)
            self._connected = True
        self._wake.set()

    def disconnected(self) -> None:
        with self._lock:
            self._connected = False

    def published(self, mid: int, failure: str | None) -> None:
        with self._lock:
            seq = self._handed.pop(mid, None)
            if seq is None:
                self._early.add(mid)
            else:
                self._done.append(seq)
            if self._hold and not self._handed:
                self._hold = False
        if failure:
            self.telemetry.error("rejected", f"the broker refused a message (mid {mid}): {failure}")
        else:
            self.telemetry.messages_out()
        self._wake.set()

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._flush_done()
                for task in self.tasks:
                    task()
                self._hand_over()
                self.telemetry.outbox(len(self.outbox), self.outbox.dropped)
                if self.on_tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + 1.0
                    self.on_tick()
            except Exception:  # keep sending whatever happens to one round
                log.exception("outbox round failed")
                self._stop.wait(0.5)

    def _flush_done(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        self.outbox.remove(done)

    def _hand_over(self) -> None:
        with self._lock:
            room = self.window - len(self._handed)
            ready = self._connected and not self._hold and room > 0
            after = self._last_handed
        if not ready:
            return
        for queued in self.outbox.peek(after, room):
            if not self._connected:
                return
            # Never under our lock: paho calls on_publish holding its own lock.
            info = self.paho.publish(queued.topic, queued.payload, queued.qos)
            if queued.qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # neither sent nor kept by paho: again when connected
            with self._lock:
                self._last_handed = queued.seq
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self._done.append(queued.seq)
                else:
                    self._handed[info.mid] = queued.seq

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"in_flight": len(self._handed), "waiting_for_resends": self._hold}
