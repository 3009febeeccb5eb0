"""End to end through a real Mosquitto and a real `mlrm serve` with an mqtt section: the set alone in
its process, and grouped with a second set that has an mqtt section of its own (one bridge each)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml

from mlrm.storage.versions import VersionStore
from mlrm.tools.datasets import breast_cancer
from tests.toolkit.brokers import Broker, Collector, mqtt_config_set, need_mosquitto, publish
from tests.toolkit.files import copy_config_set
from tests.toolkit.layouts import LAYOUTS, Layout
from tests.toolkit.processes import Process, free_port, mlrm_args
from tests.toolkit.waiting import wait_until

pytestmark = pytest.mark.mqtt


Served = tuple[str, str, Broker, Path]  # base URL, the pcb set's /v1 routes, the broker, the pcb set


@pytest.fixture(scope="module", params=LAYOUTS)
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Served]:
    """One broker and one `mlrm serve --workers 2` with an mqtt section, shared by this module's tests."""
    need_mosquitto()
    layout = Layout(request.param)
    tmp = tmp_path_factory.mktemp("served")
    broker = Broker(tmp / "broker")
    broker.start()
    folder = mqtt_config_set(tmp, broker.url)
    sets = [str(folder)]
    if layout.name == "grouped":
        cancer = copy_config_set("breast-cancer", tmp / "neighbour")
        topics = {"predict_in": "plant/{device}/bc/in", "predict_out": "plant/{device}/bc/out"}
        mqtt = {"broker": broker.url, "client_id": "mlrm-test-bc", "topics": topics}
        (cancer / "service.yaml").write_text(
            (cancer / "service.yaml").read_text() + "\n" + yaml.safe_dump({"mqtt": mqtt})
        )
        sets.append(str(cancer))
    port = free_port()
    process = Process(mlrm_args("serve", *sets, "--port", str(port), "--workers", "2"), tmp / "serve.log")
    url = f"http://127.0.0.1:{port}"
    v1 = layout.v1(url, "pcb-inspection")
    try:
        process.wait_http(f"{url}/v2/health/live")
        _wait_connected(v1)
        yield url, v1, broker, folder
    finally:
        process.stop()
        broker.stop()


def _wait_connected(v1: str, timeout: float = 20.0) -> dict[str, Any]:
    """The bridge's status once it reports a connection (GET {v1}/mqtt answers 200 then)."""

    def connected() -> dict[str, Any] | None:
        answer = requests.get(f"{v1}/mqtt", timeout=5)
        return answer.json() if answer.status_code == 200 else None

    return wait_until(connected, timeout, "MQTT bridge connected")


def test_measurement_in_prediction_out_beside_rest(
    served: Served, collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    url, v1, broker, _ = served
    status = _wait_connected(v1)
    assert status["subscriptions"] == ["plant/+/pcb/measurements"]
    out = collect(broker.port, ["plant/+/pcb/predictions", "plant/+/pcb/errors"])

    single = {**pcb_instance, "id": "m-1", "timestamp": "2024-05-01T10:00:00Z"}
    batch = {"id": "b-1", "instances": [pcb_instance, pcb_instance]}
    publish(broker.port, "plant/line-3/pcb/measurements", [orjson.dumps(single), orjson.dumps(batch)])
    out.count(2)
    # Two gunicorn workers, one bridge: nothing answers twice. A second subscriber would have
    # had both measurements before this marker was even sent, so its answers to them come
    # before the marker's: once the marker is answered, every answer to them is in.
    publish(broker.port, "plant/line-3/pcb/measurements", [orjson.dumps({**pcb_instance, "id": "marker"})])
    messages = out.wait_for(lambda m: any(body.get("id") == "marker" for _, body in m))
    assert [body["id"] for _, body in messages] == ["m-1", "b-1", "marker"]
    (topic1, one), (topic2, many), _ = messages
    assert topic1 == topic2 == "plant/line-3/pcb/predictions"
    rest = requests.post(f"{v1}/predict", json={"instances": [pcb_instance]}, timeout=5).json()
    assert one["id"] == "m-1" and one["timestamp"] == "2024-05-01T10:00:00Z" and one["device"] == "line-3"
    assert one["prediction"] == rest["predictions"][0]
    assert one["probabilities"] == pytest.approx(rest["probabilities"][0])
    assert one["model"] == rest["model"]
    assert one["took_ms"] > 0
    assert many["id"] == "b-1" and many["predictions"] == rest["predictions"] * 2

    labels = '{role="predict",service="pcb-inspection"}'
    emptied = f"mlrm_mqtt_outbox_messages{labels} 0.0"

    # The bridge reports its outbox once a second, and an answer leaves the outbox at its PUBACK,
    # which may come after the subscriber has the answer: wait for the report that shows it empty.
    def reported_empty() -> str | None:
        text = requests.get(f"{url}/metrics", timeout=5).text
        return text if emptied in text else None

    metrics = wait_until(reported_empty, 15, "the bridge to report its outbox emptied")
    assert f"mlrm_mqtt_connected{labels} 1.0" in metrics
    received = next(x for x in metrics.splitlines() if x.startswith(f"mlrm_mqtt_messages_in_total{labels}"))
    assert float(received.split()[-1]) >= 2


def test_bad_payload_reaches_error_topic_and_subscriber_keeps_working(
    served: Served, collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    url, v1, broker, _ = served
    out = collect(broker.port, ["plant/+/pcb/predictions", "plant/+/pcb/errors"])
    out_of_range = {**pcb_instance, "volume_pct": 999, "id": "m-2"}
    out_of_range.pop("height_um")
    payloads = [b"{not json", orjson.dumps(out_of_range), orjson.dumps({**pcb_instance, "id": "m-3"})]
    publish(broker.port, "plant/line-7/pcb/measurements", payloads)
    (t1, malformed), (t2, invalid), (t3, good) = out.count(3)

    assert t1 == t2 == "plant/line-7/pcb/errors"
    assert malformed["status"] == 400 and malformed["title"] == "Malformed JSON"
    assert malformed["payload"] == "{not json" and malformed["device"] == "line-7"
    assert invalid["id"] == "m-2" and invalid["status"] == 422
    assert invalid["topic"] == "plant/line-7/pcb/measurements"
    assert {e["pointer"] for e in invalid["errors"]} == {"/volume_pct", "/height_um"}
    assert t3 == "plant/line-7/pcb/predictions" and good["id"] == "m-3"

    def counted() -> dict[str, Any] | None:  # the status file is rewritten every second
        status = _wait_connected(v1)
        return status if status["errors"].get("invalid", 0) >= 2 else None

    status = wait_until(counted, 10, "both rejections counted")
    assert status["errors"]["invalid"] == 2 and status["messages"]["errors"] == 2 and status["messages"]["in"] >= 3


def test_bridge_switches_to_a_new_version_like_rest(
    served: Served, collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    _, _, broker, folder = served
    store = VersionStore(folder / "learned")
    record = store.read(store.current() or 1)
    new = store.write(record.parameters, record.files)  # what `mlrm train` does at its end
    out = collect(broker.port, ["plant/+/pcb/predictions"])

    def answered_by_new() -> bool:  # serving.reload_interval: 1 s
        publish(broker.port, "plant/v/pcb/measurements", [orjson.dumps(pcb_instance)])
        return bool(out.count(len(out.messages) + 1)[-1][1]["model"]["version"] == new)

    wait_until(answered_by_new, 10, f"answering with version {new}")


def test_a_killed_bridge_is_restarted_and_answers_again(
    served: Served, collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    url, v1, broker, _ = served
    pid = _wait_connected(v1)["pid"]
    os.kill(pid, signal.SIGKILL)  # a crash, as far as the bridge knows
    wait_until(lambda: _wait_connected(v1)["pid"] != pid, 20, "a restarted bridge connected")
    out = collect(broker.port, ["plant/+/pcb/predictions"])
    publish(broker.port, "plant/k/pcb/measurements", [orjson.dumps({**pcb_instance, "id": "after-crash"})])
    assert out.count(1)[0][1]["id"] == "after-crash"
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200  # REST never noticed


def test_mqtt_broker_option_serves_a_set_without_mqtt_section(
    tmp_path: Path, spawn: Callable[..., Process], collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    """`mlrm serve --mqtt-broker URL` (what a gateway manifest's mqtt: true passes) uses the default topics."""
    need_mosquitto()
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        folder = copy_config_set("pcb-inspection", tmp_path)
        port = free_port()
        process = spawn(mlrm_args("serve", str(folder), "--port", str(port), "--mqtt-broker", broker.url), name="serve")
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/v2/health/live")
        assert _wait_connected(f"{url}/v1")["subscriptions"] == ["mlrm/pcb-inspection/predict"]
        out = collect(broker.port, ["mlrm/pcb-inspection/predictions"])
        publish(broker.port, "mlrm/pcb-inspection/predict", [orjson.dumps({**pcb_instance, "id": "m1"})])
        [(_, body)] = out.count(1, timeout=15)
        assert body["id"] == "m1" and body["model"]["version"] == 1
    finally:
        broker.stop()


def test_each_set_of_a_group_answers_through_its_own_bridge(
    served: Served, collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    url, v1, broker, _ = served
    if v1 == f"{url}/v1":
        pytest.skip("one set alone: nothing beside it")
    neighbour = _wait_connected(f"{url}/v1/models/breast-cancer")
    assert neighbour["subscriptions"] == ["plant/+/bc/in"] and neighbour["pid"] != _wait_connected(v1)["pid"]
    out = collect(broker.port, ["plant/+/bc/out", "plant/+/pcb/predictions"])
    cancer = {k: v for k, v in breast_cancer(rows=1)[0].items() if k != "diagnosis"}
    publish(broker.port, "plant/lab/bc/in", [orjson.dumps({**cancer, "id": "c-1"})])
    publish(broker.port, "plant/lab/pcb/measurements", [orjson.dumps({**pcb_instance, "id": "p-1"})])
    answers = {body["id"]: (topic, body["model"]["name"]) for topic, body in out.count(2)}
    assert answers == {
        "c-1": ("plant/lab/bc/out", "breast-cancer"),
        "p-1": ("plant/lab/pcb/predictions", "pcb-inspection"),
    }


def test_mqtt_set_picks_which_sets_of_a_group_take_the_broker(
    tmp_path: Path, spawn: Callable[..., Process], collect: Callable[..., Collector], pcb_instance: dict[str, Any]
) -> None:
    """`mlrm serve A B --mqtt-broker URL --mqtt-set A` (what a manifest's process with mixed mqtt: passes)."""
    need_mosquitto()
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        folder = copy_config_set("pcb-inspection", tmp_path)
        other = copy_config_set("breast-cancer", tmp_path)
        port = free_port()
        args = ["serve", str(folder), str(other), "--port", str(port), "--mqtt-broker", broker.url,
                "--mqtt-set", str(folder)]  # fmt: skip
        process = spawn(mlrm_args(*args), name="serve")
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/v2/health/live")
        assert _wait_connected(f"{url}/v1/models/pcb-inspection")["subscriptions"] == ["mlrm/pcb-inspection/predict"]
        assert requests.get(f"{url}/v1/models/breast-cancer/mqtt", timeout=5).status_code == 404
        out = collect(broker.port, ["mlrm/pcb-inspection/predictions"])
        publish(broker.port, "mlrm/pcb-inspection/predict", [orjson.dumps({**pcb_instance, "id": "m1"})])
        [(_, body)] = out.count(1, timeout=15)
        assert body["id"] == "m1" and body["model"]["version"] == 1
    finally:
        broker.stop()
