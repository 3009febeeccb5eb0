"""User name and password against a broker that requires them, read from env and files."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlrm.config import load_config_set
from mlrm.errors import ConfigError
from mlrm.mqtt.client import MqttClient
from mlrm.mqtt.settings import MqttSettings
from tests.toolkit.brokers import MOSQUITTO_PASSWD, Broker, Collector, mqtt_config_set, publish
from tests.toolkit.processes import Process, mlrm_args

pytestmark = pytest.mark.mqtt


@pytest.fixture
def secured(make_broker: Callable[..., Broker], tmp_path: Path) -> Broker:
    """A broker that accepts only user 'gateway' with password 's3cret'."""
    if not Path(MOSQUITTO_PASSWD).is_file():
        pytest.skip("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    passwords = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), "gateway", "s3cret"], check=True, timeout=10)
    broker = make_broker(passwords=passwords)
    broker.start()
    return broker


def test_bridge_logs_in_with_user_from_env_and_password_from_file(
    secured: Broker,
    spawn: Callable[..., Process],
    collect: Callable[..., Collector],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pcb_instance: dict[str, Any],
) -> None:
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    folder = mqtt_config_set(
        tmp_path, secured.url, username_env="TEST_MQTT_USER", password_file=str(tmp_path / "mqtt-password")
    )
    assert "s3cret" not in (folder / "service.yaml").read_text()
    monkeypatch.setenv("TEST_MQTT_USER", "gateway")
    status = tmp_path / "status.json"
    bridge = spawn(mlrm_args("mqtt", str(folder), "--status", str(status)), name="bridge")
    bridge.wait_until(lambda: status.exists() and orjson.loads(status.read_bytes())["connected"], 20, "connected")
    out = collect(secured.port, ["plant/+/pcb/predictions"], username="gateway", password="s3cret")
    publish(secured.port, "plant/a7/pcb/measurements", [orjson.dumps({**pcb_instance, "id": "auth-1"})],
            username="gateway", password="s3cret")  # fmt: skip
    (topic, answer), *_ = out.count(1)
    assert topic == "plant/a7/pcb/predictions" and answer["id"] == "auth-1"


def test_wrong_password_is_refused_and_reported(
    secured: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = mqtt_config_set(tmp_path, secured.url, username_env="TEST_MQTT_USER", password_env="TEST_MQTT_PASSWORD")
    settings = MqttSettings.from_config(load_config_set(folder), "device")
    with pytest.raises(ConfigError) as missing:
        MqttClient(settings)
    assert "mqtt.username_env: environment variable TEST_MQTT_USER is not set" in str(missing.value)

    monkeypatch.setenv("TEST_MQTT_USER", "gateway")
    monkeypatch.setenv("TEST_MQTT_PASSWORD", "wrong")
    client = MqttClient(settings)
    client.start()
    try:
        deadline = time.monotonic() + 5
        while not client.telemetry.errors.get("connection") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not client.connected
        status = client.status()
        assert status["last_error"].startswith("the broker refused the connection")
        assert "Not authorized" in status["last_error"] or "Bad user name or password" in status["last_error"]
    finally:
        client.stop(drain=0)
