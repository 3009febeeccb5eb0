"""The worker-activity example end to end: generated IMU data, training from
YAML alone with the real CLI, the shipped learned state, and the real
`mlrm serve` answering ready windows and buffered records over HTTP."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from mlrm.config import load_config_set
from mlrm.core.service import Service
from mlrm.tools.datasets import worker_activity
from mlrm.training import trainer
from tests.toolkit.files import CONFIGS, ROOT, copy_config_set
from tests.toolkit.processes import env, mlrm_args

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

LABELS = ["hammering", "screwing", "sawing", "idle"]


def records(rows: int, seed: int) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "activity"} for r in worker_activity(rows=rows, seed=seed)]


def test_generator_makes_ordered_labelled_imu_streams() -> None:
    rows = worker_activity(rows=8000, seed=1)
    assert len(rows) == 8000 and list(rows[0]) == [
        "worker", "t", "acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "activity"]  # fmt: skip
    assert {r["worker"] for r in rows} == {"worker-1", "worker-2"} and {r["activity"] for r in rows} == set(LABELS)
    times = [r["t"] for r in rows if r["worker"] == "worker-1"]
    assert times == sorted(times) and times[1] == 0.02  # 50 Hz


def test_shipped_learned_state_is_small_and_recognises_fresh_data() -> None:
    config = load_config_set(CONFIGS / "worker-activity")
    version = CONFIGS / "worker-activity" / "learned" / "versions" / "0001"
    assert (version / "model.pt").stat().st_size < 1_000_000
    model = Service(config).require_model()
    data = trainer.dataset(config, worker_activity(rows=12000, seed=99))  # workers it never saw
    assert data.y is not None and len(data) > 400
    accuracy = float(np.mean(model.predict_matrix(data.X).values == data.y))
    assert accuracy > 0.85


def test_trains_from_yaml_alone_with_the_cli(tmp_path: Path) -> None:
    folder = copy_config_set("worker-activity", tmp_path, learned=False)
    yaml_file = folder / "service.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("epochs: 40", "epochs: 2"))

    def mlrm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)

    data = mlrm("data", "worker-activity", "--rows", "8000", "--output", str(tmp_path / "imu.csv"))
    assert data.returncode == 0, data.stderr
    trained = mlrm("train", str(folder), "--data", str(tmp_path / "imu.csv"))
    assert trained.returncode == 0, trained.stderr
    assert "train:  50% epoch 1/2: loss" in trained.stderr and "saved version 1" in trained.stdout
    stored = sorted(p.name for p in (folder / "learned" / "versions" / "0001").iterdir())
    assert stored == ["model.pt", "network.yaml", "parameters.yaml", "profile.json"]


def test_served_over_rest_by_two_workers_sharing_the_stream_buffer(
    serve: Callable[..., tuple[str, Any]], tmp_path: Path
) -> None:
    folder = copy_config_set("worker-activity", tmp_path)
    url, _ = serve(folder, "--workers", "2")
    stream = records(4000, seed=5)[:125]
    window = [{k: v for k, v in r.items() if k != "worker"} for r in stream[25:125]]

    def predict(instances: list[Any]) -> requests.Response:
        return requests.post(f"{url}/v1/predict", json={"instances": instances}, timeout=10)

    ready = predict([{"window": window}])
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["predictions"][0] in LABELS and set(body["probabilities"][0]) == set(LABELS)
    assert body["model"] == {"name": "worker-activity", "version": 1}

    needed = []
    for start in range(0, 100, 4):  # 25 requests: the two workers take turns at random
        answer = predict(stream[start : start + 4]).json()
        needed += [w["needed"] for w in answer["windows"]]
    assert needed == list(range(99, 0, -1)) + [0] and answer["predictions"][-1] in LABELS
    later = predict(stream[100:125]).json()  # step 25: the window of records 25..124 is due
    assert later["predictions"][:-1] == [None] * 24 and later["windows"][-1] == {
        "stream": "worker-1", "pending": False, "needed": 0}  # fmt: skip
    assert later["probabilities"][-1] == body["probabilities"][0]

    bad = predict([{"window": window[:99] + [{**window[99], "gyro_z": 5000}]}])
    assert bad.status_code == 422 and bad.headers["Content-Type"] == "application/problem+json"
    assert bad.json()["errors"] == [{"pointer": "/instances/0/window/99/gyro_z",
                                     "detail": "5000 is out of range: expected -2000 to 2000"}]  # fmt: skip
    schema = requests.get(f"{url}/openapi.json", timeout=5).json()
    items = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert items["properties"]["instances"]["items"]["oneOf"][0]["required"] == ["window"]
