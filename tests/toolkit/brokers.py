"""A real Mosquitto on a free loopback port, and MQTT clients that talk to it.

`Broker` runs /usr/sbin/mosquitto with a temporary config (persistence in tmp,
so a restart keeps sessions and queued messages) and waits until it accepts
connections; `restart()` keeps the port. `need_mosquitto()` skips a test only
when the binary is missing. The fixtures that start these are in tests/mqtt/conftest.py.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.toolkit.files import copy_config_set
from tests.toolkit.processes import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


class Broker:
    """One mosquitto process; start/stop/restart on the same port."""

    def __init__(self, folder: Path, passwords: Path | None = None) -> None:
        self.folder, self.passwords = folder, passwords
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            # Started as root, mosquitto would switch to user 'mosquitto' and could not write
            # its persistence file into our private tmp folder: stay who we are.
            f"user {getpass.getuser()}",
            f"allow_anonymous {'false' if passwords else 'true'}",
            "persistence true",
            f"persistence_location {folder}/",
            f"log_dest file {folder}/mosquitto.log",
            "log_type all",
        ]
        if passwords:
            lines.append(f"password_file {passwords}")
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"mosquitto not accepting connections on {self.port} after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves sessions and queued messages, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        file = self.folder / "mosquitto.log"
        return file.read_text(errors="replace")[-4000:] if file.exists() else ""


def need_mosquitto() -> None:
    """Skip the calling test when the broker binary is missing (and only then)."""
    if not Path(MOSQUITTO).is_file():
        pytest.skip("the mosquitto broker binary is not installed (apt-get install mosquitto); CI installs it")


def mqtt_config_set(tmp_path: Path, broker_url: str, **mqtt: Any) -> Path:
    """A trained copy of configs/pcb-inspection with an mqtt section (fast reconnects for tests)."""
    folder = copy_config_set("pcb-inspection", tmp_path / f"set-{uuid.uuid4().hex[:6]}")
    section: dict[str, Any] = {
        "broker": broker_url,
        "client_id": "mlrm-test-{service}-{role}-" + uuid.uuid4().hex[:6],
        "reconnect": {"min_delay": 0.1, "max_delay": 0.5},
        "topics": {
            "predict_in": "plant/{device}/pcb/measurements",
            "predict_out": "plant/{device}/pcb/predictions",
            "errors": "plant/{device}/pcb/errors",
        },
    }
    for key, value in mqtt.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    file = folder / "service.yaml"
    file.write_text(file.read_text() + "\n" + yaml.safe_dump({"mqtt": section}, sort_keys=False))
    return folder


class Collector:
    """A plain paho client that records what arrives on some topics (QoS 1, kept session)."""

    def __init__(self, port: int, topics: list[str], *, username: str | None = None, password: str | None = None,
                 client_id: str | None = None) -> None:  # fmt: skip
        self.messages: list[tuple[str, dict[str, Any] | bytes | bytearray]] = []
        self._cond = threading.Condition()
        self.topics = topics
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect_async("127.0.0.1", port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("collector did not subscribe")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body: dict[str, Any] | bytes | bytearray = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            body = message.payload
        with self._cond:
            self.messages.append((message.topic, body))
            self._cond.notify_all()

    def wait_for(self, check: Callable[[list[tuple[str, Any]]], bool], timeout: float = 10.0) -> list[tuple[str, Any]]:
        """Wait (bounded) until check(messages) holds; return the messages."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met after {timeout}s; got {self.messages[-5:]}")
                self._cond.wait(left)
            return list(self.messages)

    def count(self, n: int, timeout: float = 10.0) -> list[tuple[str, Any]]:
        return self.wait_for(lambda m: len(m) >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(port: int, topic: str, payloads: list[bytes], **auth: Any) -> None:
    """Publish payloads with QoS 1 and wait until the broker has each (a plain paho client)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
