"""Training samples over MQTT: stored through a sink before the ack, once even when redelivered."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlrm.config import load_config_set
from mlrm.config.topics import parse
from mlrm.errors import FieldError, RequestError
from mlrm.mqtt import samples
from mlrm.mqtt.client import MqttClient
from mlrm.mqtt.settings import TRAINING, MqttSettings
from tests.toolkit.brokers import Broker, Collector, mqtt_config_set, publish
from tests.toolkit.waiting import wait_until


class SqliteSink:
    """The simplest durable sink: records and the ids of stored messages in one transaction."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS messages (message_id TEXT PRIMARY KEY)")
        self.db.execute("CREATE TABLE IF NOT EXISTS samples (message_id TEXT, record TEXT)")
        self.calls: list[str] = []
        self.crash_after_commit: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, service: str, records: list[dict[str, Any]], message_id: str) -> None:
        with self.lock:
            self.calls.append(message_id)
            if any("result" not in r for r in records):
                raise RequestError("Invalid samples", 422, errors=[FieldError("/records/0/result", "missing label")])
            self.db.execute("BEGIN IMMEDIATE")
            fresh = self.db.execute("INSERT OR IGNORE INTO messages VALUES (?)", (message_id,)).rowcount == 1
            if fresh:
                self.db.executemany("INSERT INTO samples VALUES (?, ?)", [(message_id, json.dumps(r)) for r in records])
            self.db.execute("COMMIT")
            if message_id in self.crash_after_commit:
                self.crash_after_commit.discard(message_id)
                raise RuntimeError("lost power after the commit, before the ack")

    def stored(self) -> list[tuple[str, str]]:
        with self.lock:
            return self.db.execute("SELECT message_id, record FROM samples").fetchall()


def test_message_id_prefers_payload_id_then_hashes() -> None:
    assert samples.message_id("t/a", b"{}", {"id": "s-1"}) == "t/a s-1"
    assert samples.message_id("t/a", b"{}", {"id": 7}) == "t/a 7"
    hashed = samples.message_id("t/a", b'{"x":1}', {"x": 1})
    assert hashed.startswith("sha256:") and hashed == samples.message_id("t/a", b'{"x":1}', {"x": 1})
    assert hashed != samples.message_id("t/b", b'{"x":1}', {"x": 1})


def test_handler_passes_records_and_reports_rejections(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "s.sqlite")
    handler = samples.SampleHandler(
        "pcb", parse("plant/{device}/samples", inbound=True), parse("plant/{device}/errors", inbound=False), sink
    )
    assert handler.filter == "plant/+/samples"
    ok = handler.handle("plant/l1/samples", orjson.dumps({"id": 1, "records": [{"a": 1, "result": "OK"}] * 2}))
    assert ok.ack and not ok.messages and len(sink.stored()) == 2
    single = handler.handle("plant/l1/samples", orjson.dumps({"id": 2, "timestamp": 5, "a": 1, "result": "OK"}))
    assert single.ack and json.loads(sink.stored()[-1][1]) == {"a": 1, "result": "OK"}
    bad = handler.handle("plant/l1/samples", orjson.dumps({"id": 3, "a": 1}))
    assert bad.ack and bad.error == "invalid"
    error = orjson.loads(bad.messages[0].payload)
    assert bad.messages[0].topic == "plant/l1/errors"
    assert error["id"] == 3 and error["device"] == "l1" and error["errors"][0]["pointer"] == "/result"
    empty = handler.handle("plant/l1/samples", orjson.dumps({"records": []}))
    assert "non-empty" in orjson.loads(empty.messages[0].payload)["detail"]


@pytest.mark.mqtt
def test_samples_redelivered_after_a_lost_ack_are_stored_once(
    broker: Broker, collect: Callable[..., Collector], tmp_path: Path, pcb_rows: list[dict[str, Any]]
) -> None:
    folder = mqtt_config_set(tmp_path, broker.url, topics={"training_in": "plant/{device}/pcb/samples"})
    settings = MqttSettings.from_config(load_config_set(folder), TRAINING)
    sink = SqliteSink(tmp_path / "samples.sqlite")
    client = MqttClient(settings)
    samples.attach(client, sink)
    client.start()
    try:
        assert client.wait_connected(10)
        errors = collect(broker.port, ["plant/+/pcb/errors"])
        batch = {"id": "batch-1", "records": pcb_rows[:5]}
        sink.crash_after_commit.add("plant/line-2/pcb/samples batch-1")
        publish(broker.port, "plant/line-2/pcb/samples", [orjson.dumps(batch), orjson.dumps({"id": "bad", "x": 1})])
        # The broker delivers batch-1 again after the reconnect; the sink keeps one copy.
        wait_until(lambda: sink.calls.count("plant/line-2/pcb/samples batch-1") >= 2, 10, "batch-1 redelivered")
        assert sink.calls.count("plant/line-2/pcb/samples batch-1") == 2
        assert len(sink.stored()) == 5
        assert client.telemetry.reconnects >= 1 and client.telemetry.errors.get("sink") == 1
        (topic, problem), *_ = errors.count(1)
        assert topic == "plant/line-2/pcb/errors" and problem["id"] == "bad"
        # Rejected data is acked, not redelivered. The broker redelivers what was not acked when
        # a session resumes, before anything newer: resume it, then wait for a batch sent after.
        reconnects = client.telemetry.reconnects
        client.drop_connection()
        wait_until(lambda: client.connected and client.telemetry.reconnects > reconnects, 10, "reconnected")
        publish(broker.port, "plant/line-2/pcb/samples", [orjson.dumps({"id": "batch-2", "records": pcb_rows[5:7]})])
        wait_until(lambda: "plant/line-2/pcb/samples batch-2" in sink.calls, 10, "batch-2 handled")
        assert sink.calls.count("plant/line-2/pcb/samples bad") == 1
    finally:
        client.stop()
