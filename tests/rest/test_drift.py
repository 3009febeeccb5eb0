"""Drift while serving, end to end: a real `mlrm serve --workers 2` with its MQTT bridge on a real
Mosquitto. What both workers and the bridge are asked is summed in GET /v1/drift and /metrics: near 0
for traffic like the training data, significant on the one input that shifted. The reference profile
shows in GET /v1/config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from mlrm.config import load_config_set
from mlrm.tools.datasets import pcb_inspection
from mlrm.training import trainer
from tests.toolkit.brokers import Broker, Collector, need_mosquitto, publish
from tests.toolkit.files import configure, copy_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args
from tests.toolkit.waiting import wait_until

pytestmark = pytest.mark.mqtt

NAME = "pcb-inspection-lr"


def instances(n: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_inspection(n, seed=seed)]
    for r in rows:
        r["volume_pct"] += shift
    return rows


def drift_with(url: str, rows: int) -> dict[str, Any]:
    """GET /v1/drift once the window holds `rows` rows (each process writes its counts within a second)."""

    def counted() -> dict[str, Any] | None:
        body = requests.get(f"{url}/v1/drift", timeout=5).json()
        return body if body["window"]["rows"] >= rows else None

    return wait_until(counted, 20, f"{rows} rows in the drift window")


def send(url: str, broker: Broker, out: Collector, rows: list[dict[str, Any]], over_mqtt: int) -> None:
    """rows[:over_mqtt] through the MQTT bridge (batches of 20, awaited), the rest to REST (batches of 20)."""
    before = len(out.messages)
    batches = [rows[i : i + 20] for i in range(0, over_mqtt, 20)]
    publish(broker.port, "plant/line-1/pcb/measurements", [orjson.dumps({"instances": b}) for b in batches])
    with requests.Session() as session:
        for i in range(over_mqtt, len(rows), 20):
            answer = session.post(f"{url}/v1/predict", json={"instances": rows[i : i + 20]}, timeout=10)
            assert answer.status_code == 200, answer.text
    answered = out.count(before + len(batches), timeout=20)[before:]
    assert all(topic.endswith("/predictions") for topic, _ in answered), answered


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    need_mosquitto()
    running = Broker(tmp_path / "broker")
    running.start()
    yield running
    running.stop()


def test_drift_summed_over_two_workers_and_the_mqtt_bridge(
    tmp_path: Path, spawn: Callable[..., Process], broker: Broker
) -> None:
    folder = copy_config_set(NAME, tmp_path, learned=False)
    trainer.train(load_config_set(folder), pcb_inspection(3000, seed=1))
    topics = {"predict_in": "plant/{device}/pcb/measurements", "predict_out": "plant/{device}/pcb/predictions",
              "errors": "plant/{device}/pcb/errors"}  # fmt: skip
    configure(folder, mqtt={"broker": broker.url, "client_id": "mlrm-drift-test", "topics": topics},
              serving={"drift": {"min_rows": 300, "max_rate": 1000000}})  # fmt: skip
    port = free_port()
    process = spawn(mlrm_args("serve", str(folder), "--port", str(port), "--workers", "2"), name="serve")
    url = f"http://127.0.0.1:{port}"
    process.wait_http(f"{url}/v2/health/live")
    wait_until(lambda: requests.get(f"{url}/v1/mqtt", timeout=5).status_code == 200, 20, "MQTT bridge connected")
    out = Collector(broker.port, ["plant/+/pcb/predictions", "plant/+/pcb/errors"])
    try:
        check(url, folder, broker, out)
    finally:
        out.close()


def check(url: str, folder: Path, broker: Broker, out: Collector) -> None:

    learned = requests.get(f"{url}/v1/config", timeout=5).json()["learned"]
    assert learned["profile"]["rows"] == 2400 and "profile.json" in learned["artifacts"]
    assert sorted(learned["profile"]["inputs"]) == sorted(load_config_set(folder).raw["inputs"])

    # Like the training data: 600 rows, 200 of them through the bridge, another process than the workers.
    send(url, broker, out, instances(600, seed=2), over_mqtt=200)
    body = drift_with(url, 600)
    assert body["window"] == {"seconds": 3600, "rows": 600, "predicted": 600, "min_rows": 300, "enough": True}
    assert body["available"] and body["reference"]["version"] == 1 and body["reference"]["rows"] == 2400
    assert body["overall"]["level"] == "none" and body["overall"]["psi"] < 0.1, body["overall"]
    assert all(figure["level"] == "none" for figure in body["inputs"].values()), body["inputs"]
    assert body["predictions"]["level"] == "none"

    # Paste volume 15 points up (a worn stencil, say): only that input drifts.
    send(url, broker, out, instances(900, seed=3, shift=15.0), over_mqtt=300)
    body = drift_with(url, 1500)
    assert body["window"]["rows"] == 1500
    assert body["overall"]["input"] == "volume_pct" and body["overall"]["level"] == "significant"
    assert body["inputs"]["volume_pct"]["psi"] >= 0.25
    assert all(f["psi"] < 0.1 for name, f in body["inputs"].items() if name != "volume_pct"), body["inputs"]

    metrics = requests.get(f"{url}/metrics", timeout=5).text
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
             if line.startswith("mlrm_drift_")}  # fmt: skip
    assert lines[f'mlrm_drift_window_rows{{model="{NAME}"}}'] == 1500
    assert lines[f'mlrm_drift_psi{{input="volume_pct",model="{NAME}"}}'] >= 0.25
    assert lines[f'mlrm_drift_psi{{input="area_pct",model="{NAME}"}}'] < 0.1
    assert f'mlrm_drift_prediction_psi{{model="{NAME}"}}' in lines
    # The same figures from the per-set route.
    assert requests.get(f"{url}/v1/models/{NAME}/drift", timeout=5).json()["window"]["rows"] == 1500
