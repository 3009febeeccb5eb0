"""A paho-mqtt client that reconnects, re-subscribes, acks late and never loses a publish.

- Connection: paho's own loop thread (loop_start) reconnects with exponential
  backoff (reconnect_delay_set: mqtt.reconnect.min_delay .. max_delay). Every
  subscription is made in on_connect, so each reconnect re-subscribes, even
  when the broker lost our session.
- Receiving: manual_ack. on_message is a thin adapter: it calls the route's
  handler (plain function: topic, payload -> Handled), stores the handler's
  messages in the outbox, and only then sends the PUBACK. A handler that says
  ack=False (e.g. the sample sink failed) gets the message again: the client
  drops the connection and the broker redelivers unacknowledged messages of
  the kept session (clean_start: false).
- Publishing: every message goes through the Outbox (SQLite). A sender
  thread hands at most `window` messages at a time to paho, in outbox order,
  and removes each from the outbox when the broker acknowledges it. After a
  reconnect paho resends what it had in flight; new messages wait until those
  are acknowledged, so order holds across outages.

The training service reuses this class with its own routes (samples.attach).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mlrm.mqtt.messages import Handled, Outgoing
from mlrm.mqtt.outbox import Outbox, OutboxFull
from mlrm.mqtt.settings import MqttSettings
from mlrm.mqtt.telemetry import Telemetry

log = logging.getLogger("mlrm.mqtt")

Handler = Callable[[str, bytes], Handled]


@dataclass(frozen=True)
class Route:
    """Messages matching filter go to handler."""

    filter: str
    handler: Handler
    name: str


class MqttClient:
    """One connection to the broker, for one role of one service."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        outbox: Outbox | None = None,
        telemetry: Telemetry | None = None,
        window: int = 20,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.window = window
        self._paho = self._make_paho()  # before the outbox: a missing secret fails with nothing open
        box = settings.outbox
        self.outbox = outbox or Outbox(
            box.path, max_messages=box.max_messages, on_full=box.on_full, synchronous=box.synchronous
        )
        self.telemetry = telemetry or Telemetry(settings.service, settings.role)
        self.routes: list[Route] = []
        self.on_tick = on_tick
        self._lock = threading.Lock()
        self._handed: dict[int, int] = {}  # paho mid -> outbox seq, not yet acknowledged
        self._early: set[int] = set()  # mids acknowledged before publish() returned
        self._done: list[int] = []  # seqs acknowledged, to remove from the outbox
        self._last_handed = 0
        self._hold = False
        self._connected = False
        self._refused = False  # the last CONNACK said no: the disconnect that follows is not news
        self._redeliver_at: float | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._sender: threading.Thread | None = None

    # -- setup ---------------------------------------------------------------

    def _make_paho(self) -> mqtt.Client:
        """The paho client, with credentials and TLS (ConfigError if a secret or file is missing)."""
        s = self.settings
        v5 = s.protocol == "mqttv5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else s.clean_start,
            manual_ack=True,
        )
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)  # type: ignore[arg-type]
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        user, password = s.secret("username"), s.secret("password")
        if user is not None:
            client.username_pw_set(user, password)
        if s.tls:
            files = s.tls_files()
            client.tls_set(ca_certs=files["ca_file"], certfile=files["cert_file"], keyfile=files["key_file"])
            if (s.raw.get("tls") or {}).get("insecure"):
                client.tls_insecure_set(True)
        return client

    def route(self, topic_filter: str, handler: Handler, name: str) -> None:
        """Send messages matching topic_filter to handler (add routes before start)."""
        self.routes.append(Route(topic_filter, handler, name))

    def start(self) -> None:
        """Connect in the background (retrying with backoff) and start sending the outbox."""
        s = self.settings
        if s.protocol == "mqttv5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry
            self._paho.connect_async(s.host, s.port, s.keepalive, clean_start=s.clean_start, properties=props)
        else:
            self._paho.connect_async(s.host, s.port, s.keepalive)
        self._paho.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mlrm-mqtt-outbox", daemon=True)
        self._sender.start()
        log.info("%s/%s: connecting to %s as %s", s.service, s.role, s.broker, s.client_id)

    def stop(self, drain: float = 2.0) -> None:
        """Wait up to drain s for in-flight publishes, then disconnect; the outbox keeps the rest."""
        deadline = time.monotonic() + drain
        while self._connected and time.monotonic() < deadline:
            with self._lock:
                busy = bool(self._handed) or (len(self.outbox) > len(self._done) and not self._hold)
            if not busy:
                break
            self._wake.set()
            time.sleep(0.02)
        self._stopping.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(5)
        self._flush_done()
        self._paho.disconnect()
        self._paho.loop_stop()
        self.outbox.close()

    # -- public --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def publish(self, messages: list[Outgoing]) -> None:
        """Queue messages for the broker, durably; OutboxFull if full and on_full is reject_new."""
        self.outbox.put(messages, self.settings.qos)
        self._wake.set()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self._connected and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._connected

    def drop_connection(self) -> None:
        """Break the connection as a network failure would; paho reconnects with backoff."""
        sock = self._paho.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
            except OSError:
                pass

    def status(self) -> dict[str, Any]:
        """Connection state, counters and outbox, JSON-ready (the status file)."""
        s = self.settings
        out = self.telemetry.snapshot()
        out.update({
            "service": s.service, "role": s.role, "broker": s.broker, "client_id": s.client_id,
            "subscriptions": [r.filter for r in self.routes],
        })  # fmt: skip
        out["outbox"].update({"max": self.outbox.max_messages, "on_full": self.outbox.on_full,
                              "path": str(self.outbox.path)})  # fmt: skip
        return out

    # -- paho callbacks (paho's thread) ---------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        s = self.settings
        if reason.is_failure:
            message = f"the broker refused the connection: {reason}"
            log.warning("%s/%s: %s", s.service, s.role, message)
            self._refused = True
            self.telemetry.error("connection", message)
            self.telemetry.set_connected(False, message)
            return
        self._refused = False
        if self.routes:
            if s.protocol == "mqttv5":
                client.subscribe([(r.filter, SubscribeOptions(qos=s.qos)) for r in self.routes])
            else:
                client.subscribe([(r.filter, s.qos) for r in self.routes])
        with self._lock:
            if s.qos == 0 and self._handed:
                # paho drops unsent QoS 0 packets on reconnect: send them again from the outbox.
                self._last_handed = min(self._handed.values()) - 1
                self._handed.clear()
            self._hold = bool(self._handed)
            self._connected = True
        session = " (session kept)" if getattr(flags, "session_present", False) else ""
        log.info("%s/%s: connected to %s%s", s.service, s.role, s.broker, session)
        self.telemetry.set_connected(True)
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        message = f"cannot reach the broker at {self.settings.host}:{self.settings.port}"
        self.telemetry.error("connection", message)
        self.telemetry.set_connected(False, message)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            self._connected = False
        lost = not self._stopping.is_set() and not self._refused
        message = f"connection lost ({reason}); reconnecting" if lost else None
        if lost:
            log.warning("%s/%s: %s", self.settings.service, self.settings.role, message)
        self.telemetry.set_connected(False, message)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        for route, reason in zip(self.routes, reasons):
            if reason.is_failure:
                message = f"the broker refused the subscription to {route.filter}: {reason}"
                log.error("%s/%s: %s", self.settings.service, self.settings.role, message)
                self.telemetry.error("subscribe", message)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        started = time.perf_counter()
        topic = message.topic
        route = next((r for r in self.routes if mqtt.topic_matches_sub(r.filter, topic)), None)
        if route is None:
            handled = Handled()
        else:
            try:
                handled = route.handler(topic, message.payload)
            except Exception as exc:  # a bug in a handler must not stop the subscriber
                log.exception("%s: handler failed on a message on %s", route.name, topic)
                handled = Handled([], ack=True, error="internal")
                self.telemetry.error("internal", f"{type(exc).__name__}: {exc}")
        ack = handled.ack
        if handled.messages:
            try:
                self.outbox.put(handled.messages, self.settings.qos)
            except OutboxFull as exc:
                self.telemetry.error("outbox-full", str(exc))
            except Exception as exc:  # disk full, I/O error: keep the input, the broker has it
                log.error("cannot store the answer to a message on %s: %s", topic, exc)
                self.telemetry.error("outbox", f"{type(exc).__name__}: {exc}")
                ack = False
        if handled.error and handled.error != "internal":
            self.telemetry.error(handled.error)
        self.telemetry.message_in(time.perf_counter() - started)
        if ack:
            if message.qos > 0:
                client.ack(message.mid, message.qos)
        elif message.qos > 0:
            with self._lock:
                if self._redeliver_at is None:
                    self._redeliver_at = time.monotonic() + self.settings.reconnect_min
        self._wake.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            seq = self._handed.pop(mid, None)
            if seq is None:
                self._early.add(mid)
            else:
                self._done.append(seq)
            if self._hold and not self._handed:
                self._hold = False
        if getattr(reason, "is_failure", False):
            self.telemetry.error("rejected", f"the broker refused a message (mid {mid}): {reason}")
        else:
            self.telemetry.messages_out()
        self._wake.set()

    # -- sender thread ----------------------------------------------------------

    def _send_loop(self) -> None:
        next_tick = 0.0
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._flush_done()
                self._maybe_redeliver()
                self._hand_over()
                self.telemetry.outbox(len(self.outbox), self.outbox.dropped)
                if self.on_tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + 1.0
                    self.on_tick()
            except Exception:  # keep sending whatever happens to one round
                log.exception("%s/%s: outbox round failed", self.settings.service, self.settings.role)
                time.sleep(0.5)

    def _flush_done(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        self.outbox.remove(done)

    def _maybe_redeliver(self) -> None:
        with self._lock:
            due = self._redeliver_at is not None and time.monotonic() >= self._redeliver_at
            if due:
                self._redeliver_at = None
        if due:
            log.warning("%s/%s: reconnecting so the broker redelivers a message that was not stored",
                        self.settings.service, self.settings.role)  # fmt: skip
            self.drop_connection()

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
            info = self._paho.publish(queued.topic, queued.payload, queued.qos)
            if queued.qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # not sent and not kept by paho: try again when connected
            with self._lock:
                self._last_handed = queued.seq
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self._done.append(queued.seq)
                else:
                    self._handed[info.mid] = queued.seq
