"""The whole loop with real processes: `mlrm serve` (2 workers) answers
predictions without pause while consumers post samples to the training
service, directly and as feedback through the ML service; the new_samples
trigger fires, the gate promotes, and the ML service answers with the new
version and better accuracy, with no failed request. Then an operator
retrains from the command line with `mlrm train --remote`."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.tools.datasets import to_csv
from tests.toolkit.files import configure
from tests.toolkit.processes import env, free_port, mlrm_args
from tests.toolkit.training import NAME

TARGET = "diagnosis"


def features(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != TARGET}


def all_new(answers: list[tuple[int, Any, float]]) -> bool:
    """Version 2 answered over half a second ago (every worker checks every 0.2 s), and since then only it."""
    first = next((t for _, version, t in answers if version == 2), None)
    if first is None or time.monotonic() - first < 0.5:
        return False
    return all(version == 2 for _, version, t in answers if t > first + 0.5)


def accuracy(url: str, rows: list[dict[str, Any]]) -> tuple[float, int]:
    """Accuracy of the served model on rows, and the version that answered."""
    body = requests.post(f"{url}/v1/predict", json={"instances": [features(r) for r in rows]}, timeout=10).json()
    hits = sum(p == r[TARGET] for p, r in zip(body["predictions"], rows, strict=True))
    return hits / len(rows), body["model"]["version"]


@pytest.mark.slow
def test_samples_in_better_model_out_without_a_failed_request(
    root: Path, serve: Any, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    folder = root / NAME
    port = free_port()
    configure(folder, training={"triggers": {"new_samples": 200}},
              feedback={"training_service": f"http://127.0.0.1:{port}"})  # fmt: skip
    ts_url, _ = training_service(root, port=port)
    ml_url, _ = serve(folder, "--workers", "2")
    test_rows = cancer_rows[450:]
    before, version = accuracy(ml_url, test_rows)
    assert version == 1

    answers: list[tuple[int, Any, float]] = []
    stop = threading.Event()

    def predict_forever() -> None:
        with requests.Session() as session:
            i = 0
            while not stop.is_set():
                row = test_rows[i % len(test_rows)]
                r = session.post(f"{ml_url}/v1/predict", json={"instances": [features(row)]}, timeout=10)
                answers.append((r.status_code, r.json().get("model", {}).get("version"), time.monotonic()))
                i += 1

    client = threading.Thread(target=predict_forever)
    client.start()
    try:
        for start in range(0, 150, 50):  # straight to the training service
            r = requests.post(f"{ts_url}/v1/services/{NAME}/samples",
                              json={"records": cancer_rows[start : start + 50]}, timeout=10)  # fmt: skip
            assert r.status_code == 202 and r.json()["accepted"] == 50
        for start in range(150, 250, 50):  # true labels sent back through the ML service
            r = requests.post(f"{ml_url}/v1/feedback", json={"records": cancer_rows[start : start + 50]}, timeout=10)
            assert r.status_code == 202 and r.json()["delivered"] is True
        posted = time.monotonic()
        deadline = posted + 30
        # Each worker switches at its own next check (serving.reload_interval): wait for all of them.
        while not all_new(answers) and time.monotonic() < deadline:
            time.sleep(0.05)
        serving_after = time.monotonic() - posted
    finally:
        stop.set()
        client.join(15)

    assert all_new(answers), f"version 2 never served by every worker: {answers[-10:]}"
    assert {status for status, _, _ in answers} == {200}, "a prediction failed during the update"
    assert {version for _, version, _ in answers} == {1, 2}
    (job,) = requests.get(f"{ts_url}/v1/services/{NAME}/jobs", timeout=5).json()["jobs"]
    assert job["trigger"] == "new_samples" and job["state"] == "succeeded"
    result = job["result"]
    assert result["promoted"] and result["version"] == 2 and result["rows"] >= 200  # fired at 200 or more
    assert result["candidate_metrics"]["f1_macro"] > result["current_metrics"]["f1_macro"]
    after, version = accuracy(ml_url, test_rows)
    assert version == 2 and after > before + 0.1, (before, after)
    print(f"trigger to serving: {serving_after:.2f}s; accuracy {before:.3f} -> {after:.3f}")

    # An operator posts a CSV and retrains on demand from the command line, following the job.
    data = tmp_path / "more.csv"
    data.write_text(to_csv(cancer_rows[250:300]), encoding="utf-8")
    cli = subprocess.run(mlrm_args("train", str(folder), "--remote", ts_url, "--data", str(data)),
                         capture_output=True, text=True, env=env(), timeout=60)  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "50 samples accepted, 0 rejected" in cli.stdout
    assert "version 3 promoted: now current" in cli.stdout or "version 3 refused" in cli.stdout
    stats = requests.get(f"{ts_url}/v1/services/{NAME}/samples/stats", timeout=5).json()
    assert stats["total"] == 300 and stats["new_since_last_training"] == 0
