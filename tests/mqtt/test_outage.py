"""Broker outages: nothing lost, order kept, through the outbox and kept sessions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlrm.config import load_config_set
from mlrm.mqtt.client import MqttClient
from mlrm.mqtt.messages import Outgoing
from mlrm.mqtt.settings import MqttSettings
from tests.toolkit.brokers import Broker, Collector, mqtt_config_set
from tests.toolkit.processes import Process, mlrm_args
from tests.toolkit.waiting import wait_until

pytestmark = pytest.mark.mqtt


def _ids(messages: list[tuple[str, Any]]) -> list[Any]:
    return [body["id"] for _, body in messages]


def _first_seen(ids: list[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for i in ids:
        seen.setdefault(i, None)
    return list(seen)


def test_outbox_keeps_messages_while_the_broker_is_away_and_across_a_restart(
    make_broker: Callable[..., Broker], collect: Callable[..., Collector], tmp_path: Path
) -> None:
    broker = make_broker()  # not started yet
    folder = mqtt_config_set(tmp_path, broker.url)
    settings = MqttSettings.from_config(load_config_set(folder), "device")
    client = MqttClient(settings)
    client.start()  # keeps retrying with backoff
    client.publish([Outgoing("plant/d1/out", orjson.dumps({"id": i})) for i in range(30)])
    # Two failed attempts: the one the start made and one after the messages were queued.
    wait_until(lambda: client.telemetry.errors.get("connection", 0) >= 2, 10, "two failed connection attempts")
    assert not client.connected and len(client.outbox) == 30
    assert client.status()["last_error"].startswith("cannot reach the broker")
    client.stop(drain=0)

    broker.start()
    out = collect(broker.port, ["plant/+/out"])
    client = MqttClient(settings)  # as after a restart of the process: the outbox file is all it has
    assert len(client.outbox) == 30
    client.publish([Outgoing("plant/d1/out", orjson.dumps({"id": i})) for i in range(30, 40)])
    client.start()
    try:
        messages = out.count(40)
        assert _ids(messages) == list(range(40))
        wait_until(lambda: len(client.outbox) == 0, 5, "the outbox emptied")
    finally:
        client.stop()


def test_broker_restart_mid_stream_loses_nothing(
    spawn: Callable[..., Process],
    make_broker: Callable[..., Broker],
    collect: Callable[..., Collector],
    tmp_path: Path,
    pcb_rows: list[dict[str, Any]],
) -> None:
    broker = make_broker()
    broker.start()
    folder = mqtt_config_set(tmp_path, broker.url)
    status = tmp_path / "bridge-status.json"
    bridge = spawn(mlrm_args("mqtt", str(folder), "--status", str(status)), name="bridge")
    bridge.wait_until(lambda: status.exists() and orjson.loads(status.read_bytes())["connected"], 20, "connected")
    out = collect(broker.port, ["plant/+/pcb/predictions"], client_id="collector-outage")
    device = MqttClient(MqttSettings.from_config(load_config_set(folder), "device"))
    device.start()
    assert device.wait_connected(10)
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_rows[:60]]
    try:
        for i, row in enumerate(rows[:20]):
            device.publish([Outgoing("plant/line-1/pcb/measurements", orjson.dumps({**row, "id": i}))])
        out.wait_for(lambda m: len(m) >= 5)
        refused = device.telemetry.errors.get("connection", 0)
        broker.stop()  # mid-stream: some answers are out, others in flight or not yet made
        for i, row in enumerate(rows[20:40], start=20):
            device.publish([Outgoing("plant/line-1/pcb/measurements", orjson.dumps({**row, "id": i}))])
        # The device has noticed the broker is gone once a reconnect attempt has failed.
        wait_until(lambda: device.telemetry.errors.get("connection", 0) > refused, 10, "a failed reconnect")
        assert not device.connected and len(device.outbox) >= 20
        broker.start()  # same port, same persistence: sessions and queued messages are back
        for i, row in enumerate(rows[40:], start=40):
            device.publish([Outgoing("plant/line-1/pcb/measurements", orjson.dumps({**row, "id": i}))])
        try:
            messages = out.wait_for(lambda m: set(_ids(m)) >= set(range(60)), timeout=20)
        except TimeoutError:
            missing = sorted(set(range(60)) - set(_ids(out.messages)))
            raise AssertionError(f"answers missing for {missing}\n{bridge.output()}\n{broker.log()}") from None
        ids = _ids(messages)
        assert _first_seen(ids) == list(range(60))  # nothing lost, in order (a redelivery may repeat one)
        assert all(t == "plant/line-1/pcb/predictions" for t, _ in messages)
        # The bridge rewrites its status file periodically: give it a moment to report the reconnect.
        bridge.wait_until(lambda: orjson.loads(status.read_bytes())["reconnects"] >= 1, 10, "reporting the reconnect")
    finally:
        device.stop()
