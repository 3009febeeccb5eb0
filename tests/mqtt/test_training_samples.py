"""`mlrm training-service` reads labelled samples from topics.training_in and stores each message once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from mlrm.config import load_config_set
from mlrm.mqtt.client import MqttClient
from mlrm.mqtt.messages import Outgoing
from mlrm.mqtt.settings import MqttSettings
from tests.toolkit.brokers import Broker, Collector, mqtt_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args
from training_service import mqtt_samples
from training_service.services import ConfigRoot
from training_service.settings import STORE_FILE
from training_service.sqlite_store import SQLiteStore

pytestmark = pytest.mark.mqtt

NAME = "pcb-inspection"
TOPIC = "plant/line-1/pcb/samples"
SUBSCRIBED = "pcb-inspection/training: subscribed to plant/+/pcb/samples"


def _training_service(spawn: Callable[..., Process], folder: Path) -> tuple[str, Process]:
    """The real `mlrm training-service` over the config root that holds folder, once it answers."""
    port = free_port()
    args = ["training-service", "--config-root", str(folder.parent), "--port", str(port), "--workers", "1"]
    process = spawn(mlrm_args(*args), name="training-service")
    url = f"http://127.0.0.1:{port}"
    process.wait_http(f"{url}/v1/health")
    return url, process


def _stats(url: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{url}/v1/services/{NAME}/samples/stats", timeout=5).json()
    return body


def _key(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _device(folder: Path) -> MqttClient:
    """A device that publishes through its own durable outbox, so nothing is lost while the broker is away."""
    client = MqttClient(MqttSettings.from_config(load_config_set(folder), "device"))
    client.start()
    assert client.wait_connected(10)
    return client


def test_500_samples_across_broker_and_service_outages_are_stored_exactly_once(
    spawn: Callable[..., Process],
    make_broker: Callable[..., Broker],
    tmp_path: Path,
    pcb_rows: list[dict[str, Any]],
) -> None:
    broker = make_broker()
    broker.start()
    folder = mqtt_config_set(tmp_path, broker.url, topics={"training_in": "plant/{device}/pcb/samples"})
    url, service = _training_service(spawn, folder)
    service.wait_until(lambda: SUBSCRIBED in service.output(), 30, "subscribed to training_in")
    rows = pcb_rows[:500]
    device = _device(folder)

    def send(first: int, last: int) -> None:
        for i in range(first, last):
            device.publish([Outgoing(TOPIC, orjson.dumps({"id": f"s-{i}", **rows[i]}))])

    try:
        send(0, 200)
        service.wait_until(lambda: _stats(url)["total"] >= 50, 60, "storing samples")
        broker.stop()  # mid-stream: some samples stored, some queued at the broker, some in flight
        send(200, 350)  # wait in the device's outbox
        service.wait_until(lambda: "training: connection lost" in service.output(), 30, "noticing the outage")
        broker.start()  # same port and persistence: sessions and queued messages are back
        service.wait_until(lambda: _stats(url)["total"] >= 350, 60, "storing what was sent before and during")
        service.stop()  # now the broker queues for the training service's kept session
        send(350, 500)
        deadline = time.monotonic() + 30
        while len(device.outbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(device.outbox) == 0, "the broker did not take the last 150 samples"
        broker.restart()  # the queue must survive a restart of the broker too
        url, service = _training_service(spawn, folder)
        try:
            service.wait_until(lambda: _stats(url)["total"] >= 500, 60, "storing all 500 samples")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{broker.log()}") from None
        assert "training: connected to " + broker.url + " (session kept)" in service.output()
        stats = _stats(url)
        assert stats["total"] == 500 and stats["batches"] == 500
        stored = SQLiteStore(folder.parent / STORE_FILE).records(NAME, stats["last_id"])
        assert Counter(map(_key, stored)) == Counter(map(_key, rows))  # each sample once, as sent (no id)
    finally:
        device.stop()


def test_problems_go_to_the_errors_topic_and_the_service_starts_without_a_broker(
    spawn: Callable[..., Process],
    make_broker: Callable[..., Broker],
    collect: Callable[..., Collector],
    tmp_path: Path,
    pcb_rows: list[dict[str, Any]],
) -> None:
    broker = make_broker()  # not started: the training service must come up anyway
    folder = mqtt_config_set(tmp_path, broker.url, topics={"training_in": "plant/{device}/pcb/samples"})
    url, service = _training_service(spawn, folder)
    assert _stats(url)["total"] == 0
    broker.start()
    service.wait_until(lambda: SUBSCRIBED in service.output(), 30, "subscribed once the broker is up")
    errors = collect(broker.port, ["plant/+/pcb/errors"])
    good, other = pcb_rows[0], pcb_rows[1]
    payloads = [
        orjson.dumps({"id": "bad-1", **good, "volume_pct": "high"}),
        orjson.dumps({"id": "mixed", "records": [other, {**good, "result": "maybe"}]}),
        b"{not json",
        orjson.dumps({"id": "mixed", "records": [good]}),  # the same id again, other samples
    ]
    device = _device(folder)
    try:
        device.publish([Outgoing(TOPIC, p) for p in payloads])
        problems = [body for _, body in errors.count(4, timeout=30)]
    finally:
        device.stop()
    bad, mixed, malformed, reused = problems
    assert bad["id"] == "bad-1" and bad["device"] == "line-1" and bad["topic"] == TOPIC
    assert bad["errors"][0]["pointer"] == "/volume_pct" and "nothing was stored" in bad["detail"]
    assert mixed["id"] == "mixed" and mixed["errors"][0]["pointer"] == "/records/1/result"
    assert mixed["detail"].startswith("stored 1 of 2 records, rejected 1")
    assert malformed["title"] == "Malformed JSON" and malformed["payload"] == "{not json"
    assert reused["type"].endswith("/sample-id-reused") and "new id" in reused["detail"]
    stats = _stats(url)
    assert stats["total"] == 1 and stats["batches"] == 1  # only the good record of "mixed"
    assert SQLiteStore(folder.parent / STORE_FILE).records(NAME, stats["last_id"]) == [other]


def test_only_config_sets_with_training_in_and_their_secrets_get_a_subscriber(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLRM_TEST_MQTT_USER", raising=False)
    url = "mqtt://127.0.0.1:1883"
    samples = {"training_in": "plant/{device}/pcb/samples"}
    plain = mqtt_config_set(tmp_path, url)
    wanted = mqtt_config_set(tmp_path, url, topics=samples)
    secret = mqtt_config_set(tmp_path, url, topics=samples, username_env="MLRM_TEST_MQTT_USER")
    assert mqtt_samples.subscriptions(ConfigRoot(plain.parent)) == ([], [])
    (settings,), problems = mqtt_samples.subscriptions(ConfigRoot(wanted.parent))
    assert settings.role == "training" and settings.client_id.startswith("mlrm-test-pcb-inspection-training-")
    assert problems == []
    subscribed, (problem,) = mqtt_samples.subscriptions(ConfigRoot(secret.parent))
    assert subscribed == [] and "mqtt.username_env: environment variable MLRM_TEST_MQTT_USER" in problem


def test_message_ids_become_valid_idempotency_keys() -> None:
    assert mqtt_samples.idempotency_key("plant/l1/samples s-1") == "mqtt:plant/l1/samples s-1"
    long = mqtt_samples.idempotency_key("plant/" + "x" * 300 + " s-1")
    odd = mqtt_samples.idempotency_key("plant/\n s-1")
    assert long.startswith("mqtt:sha256:") and odd.startswith("mqtt:sha256:") and len(long) == len(odd) < 255
