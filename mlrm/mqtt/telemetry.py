"""What an MQTT client did: counters for the status file, and Prometheus metrics.

Under `mlrm serve` the bridge process inherits PROMETHEUS_MULTIPROC_DIR, so
these samples land in the directory REST /metrics adds up: one /metrics shows
HTTP and MQTT. Gauges use the "live" modes, so a dead bridge's values vanish
once the supervisor marks its pid dead.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Telemetry:
    """Counters of one client (service, role), mirrored to Prometheus."""

    def __init__(self, service: str, role: str, registry: CollectorRegistry | None = None) -> None:
        self.service, self.role = service, role
        self._lock = threading.Lock()
        self.connected = False
        self._ever_connected = False
        self.changed_at = time.time()
        self.received = 0
        self.sent = 0
        self.errors: dict[str, int] = {}
        self.reconnects = 0
        self.last_error: str | None = None
        self.outbox_length = 0
        self.outbox_dropped = 0
        r = registry or CollectorRegistry()
        labels = ["service", "role"]
        self._connected = Gauge(
            "mlrm_mqtt_connected", "1 while connected to the broker.", labels, registry=r, multiprocess_mode="livemax"
        )
        self._in = Counter("mlrm_mqtt_messages_in", "Messages received.", labels, registry=r)
        self._out = Counter("mlrm_mqtt_messages_out", "Messages the broker acknowledged.", labels, registry=r)
        self._errors = Counter(
            "mlrm_mqtt_errors", "Problems: invalid, not-ready, internal, sink, outbox-full, rejected, connection.",
            [*labels, "kind"], registry=r,
        )  # fmt: skip
        self._reconnects = Counter("mlrm_mqtt_reconnects", "Connections after the first.", labels, registry=r)
        self._outbox = Gauge(
            "mlrm_mqtt_outbox_messages", "Messages waiting in the outbox.", labels, registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self._dropped = Counter("mlrm_mqtt_outbox_dropped", "Messages the full outbox dropped.", labels, registry=r)
        self._latency = Histogram(
            "mlrm_mqtt_handle_seconds", "Time from receiving a message to its answer stored.", labels,
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self._connected.labels(service, role).set(0)
        self._outbox.labels(service, role).set(0)

    def _labels(self) -> tuple[str, str]:
        return self.service, self.role

    def set_connected(self, connected: bool, error: str | None = None) -> None:
        with self._lock:
            if connected and not self.connected:
                if self._ever_connected:
                    self.reconnects += 1
                    self._reconnects.labels(*self._labels()).inc()
                self._ever_connected = True
            if connected != self.connected:
                self.changed_at = time.time()
            self.connected = connected
            if error:
                self.last_error = error
        self._connected.labels(*self._labels()).set(1 if connected else 0)

    def message_in(self, seconds: float | None = None) -> None:
        with self._lock:
            self.received += 1
        self._in.labels(*self._labels()).inc()
        if seconds is not None:
            self._latency.labels(*self._labels()).observe(seconds)

    def messages_out(self, n: int = 1) -> None:
        with self._lock:
            self.sent += n
        self._out.labels(*self._labels()).inc(n)

    def error(self, kind: str, message: str | None = None) -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if message:
                self.last_error = message
        self._errors.labels(*self._labels(), kind).inc()

    def outbox(self, length: int, dropped_total: int) -> None:
        with self._lock:
            new_drops = dropped_total - self.outbox_dropped
            self.outbox_length, self.outbox_dropped = length, dropped_total
        self._outbox.labels(*self._labels()).set(length)
        if new_drops > 0:
            self._dropped.labels(*self._labels()).inc(new_drops)

    def snapshot(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (the status file's core)."""
        with self._lock:
            return {
                "connected": self.connected,
                "since": self.changed_at,
                "messages": {"in": self.received, "out": self.sent, "errors": sum(self.errors.values())},
                "errors": dict(self.errors),
                "reconnects": self.reconnects,
                "outbox": {"length": self.outbox_length, "dropped": self.outbox_dropped},
                "last_error": self.last_error,
            }
