"""A paho-mqtt client that reconnects, re-subscribes, acks late and never loses a publish.

- Connection: paho's own loop thread (loop_start) reconnects with exponential
  backoff (reconnect_delay_set: mqtt.reconnect.min_delay .. max_delay). Every
  subscription is made in on_connect, so each reconnect re-subscribes, even
  when the broker lost our session.
- Receiving (mlrm.mqtt.receiver): manual_ack. on_message is a thin adapter
  that queues the message; a worker thread calls the route's handler (plain
  functions: messages -> Handled), stores the answers in the outbox, and only
  then sends the PUBACKs. A handler that says ack=False (e.g. the sample sink
  failed) gets the message again: the client drops the connection and the
  broker redelivers unacknowledged messages of the kept session.
- Publishing (mlrm.mqtt.sender): everything goes through the MqttOutbox (SQLite)
  and leaves it, in order, only when the broker acknowledged it.

The training service reuses this class with its own route (samples.attach).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mlrm.mqtt.messages import Handled, Inbound, Outgoing
from mlrm.mqtt.receiver import BatchHandler, Receiver, Route
from mlrm.mqtt.sender import Sender
from mlrm.mqtt.settings import MqttSettings
from mlrm.mqtt.telemetry import Telemetry
from mlrm.storage.mqtt_outbox import MqttOutbox

log = logging.getLogger("mlrm.mqtt")

Handler = Callable[[str, bytes], Handled]


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Send small packets at once: paho leaves Nagle on, so an answer written right after the
    PUBACK of its question waited for the broker's delayed TCP ACK (about 40 ms on Linux)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class MqttClient:
    """One connection to the broker, for one role of one service."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        outbox: MqttOutbox | None = None,
        telemetry: Telemetry | None = None,
        window: int = 20,
        max_batch: int = 100,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.window = window
        self._paho = self._make_paho()  # before the outbox: a missing secret fails with nothing open
        box = settings.outbox
        self.outbox = outbox or MqttOutbox(
            box.path, max_messages=box.max_messages, on_full=box.on_full, synchronous=box.synchronous
        )
        self.telemetry = telemetry or Telemetry(settings.service, settings.role)
        self.routes: list[Route] = []
        self._lock = threading.Lock()
        self._connected = False
        self._refused = False  # the last CONNACK said no: the disconnect that follows is not news
        self._stopping = False
        self._redeliver_at: float | None = None
        self.sender = Sender(self._paho, self.outbox, self.telemetry, window=window, on_tick=on_tick)
        self.sender.tasks.append(self._maybe_redeliver)
        self.receiver = Receiver(
            self.outbox, self.telemetry, qos=settings.qos, ack=self._paho.ack,
            not_stored=self._redeliver_later, stored=self.sender.wake, max_batch=max_batch,
        )  # fmt: skip

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
        client.on_socket_open = _no_delay
        user, password = s.secret("username"), s.secret("password")
        if user is not None:
            client.username_pw_set(user, password)
        if s.tls:
            files = s.tls_files()
            client.tls_set(ca_certs=files["ca_file"], certfile=files["cert_file"], keyfile=files["key_file"])
            if (s.raw.get("tls") or {}).get("insecure"):
                client.tls_insecure_set(True)
        return client

    # -- public --------------------------------------------------------------

    def route(self, topic_filter: str, handler: Handler, name: str) -> None:
        """Send each message matching topic_filter to handler(topic, payload) (before start)."""
        self.route_batch(topic_filter, lambda batch: [handler(m.topic, m.payload) for m in batch], name)

    def route_batch(self, topic_filter: str, handle: BatchHandler, name: str) -> None:
        """Like route, but handle gets every queued message of the route at once (before start)."""
        self.routes.append(Route(topic_filter, handle, name))

    def start(self) -> None:
        """Connect in the background (retrying with backoff); start receiving and sending."""
        s = self.settings
        self.receiver.start()
        self.sender.start()
        if s.protocol == "mqttv5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry
            self._paho.connect_async(s.host, s.port, s.keepalive, clean_start=s.clean_start, properties=props)
        else:
            self._paho.connect_async(s.host, s.port, s.keepalive)
        self._paho.loop_start()
        log.info("%s/%s: connecting to %s as %s", s.service, s.role, s.broker, s.client_id)

    def stop(self, drain: float = 2.0) -> None:
        """Stop taking messages, wait up to drain s for the outbox to empty, disconnect.

        Nothing is lost: unacknowledged input stays with the broker, unsent output in the outbox.
        """
        self.receiver.stop()
        deadline = time.monotonic() + drain
        while self._connected and self.sender.busy() and time.monotonic() < deadline:
            self.sender.wake()
            time.sleep(0.02)
        self._stopping = True
        self.sender.stop()
        self._paho.disconnect()
        self._paho.loop_stop()
        self.outbox.close()

    @property
    def connected(self) -> bool:
        return self._connected

    def publish(self, messages: list[Outgoing]) -> None:
        """Queue messages for the broker, durably; OutboxFull if full and on_full is reject_new."""
        self.outbox.put(messages, self.settings.qos)
        self.sender.wake()

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
                sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined,union-attr]
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
                              "path": str(self.outbox.path), **self.sender.describe()})  # fmt: skip
        return out

    # -- redelivery of what was not stored ---------------------------------------

    def _redeliver_later(self) -> None:
        with self._lock:
            if self._redeliver_at is None:
                self._redeliver_at = time.monotonic() + self.settings.reconnect_min

    def _maybe_redeliver(self) -> None:
        with self._lock:
            due = self._redeliver_at is not None and time.monotonic() >= self._redeliver_at
            if due:
                self._redeliver_at = None
        if due:
            log.warning("%s/%s: reconnecting so the broker redelivers what was not stored",
                        self.settings.service, self.settings.role)  # fmt: skip
            self.drop_connection()

    # -- paho callbacks (paho's thread) -------------------------------------------

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
        self.receiver.new_connection()
        if self.routes:
            if s.protocol == "mqttv5":
                client.subscribe([(r.filter, SubscribeOptions(qos=s.qos)) for r in self.routes])
            else:
                client.subscribe([(r.filter, s.qos) for r in self.routes])
        self._connected = True
        self.sender.connected(s.qos)
        session = " (session kept)" if getattr(flags, "session_present", False) else ""
        log.info("%s/%s: connected to %s%s", s.service, s.role, s.broker, session)
        self.telemetry.set_connected(True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        message = f"cannot reach the broker at {self.settings.host}:{self.settings.port}"
        self.telemetry.error("connection", message)
        self.telemetry.set_connected(False, message)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected = False
        self.sender.disconnected()
        lost = not self._stopping and not self._refused
        message = f"connection lost ({reason}); reconnecting" if lost else None
        if lost:
            log.warning("%s/%s: %s", self.settings.service, self.settings.role, message)
        self.telemetry.set_connected(False, message)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        for route, reason in zip(self.routes, reasons, strict=False):
            if reason.is_failure:
                message = f"the broker refused the subscription to {route.filter}: {reason}"
                log.error("%s/%s: %s", self.settings.service, self.settings.role, message)
                self.telemetry.error("subscribe", message)
            else:  # from here on the broker keeps what is published there for us
                log.info("%s/%s: subscribed to %s", self.settings.service, self.settings.role, route.filter)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = time.perf_counter()
        topic = message.topic
        route = next((r for r in self.routes if mqtt.topic_matches_sub(r.filter, topic)), None)
        if route is None:  # e.g. a subscription of an earlier configuration, kept in the session
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            return
        self.receiver.submit(route, Inbound(topic, bytes(message.payload), received), message.mid, message.qos)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.sender.published(mid, str(reason) if getattr(reason, "is_failure", False) else None)
