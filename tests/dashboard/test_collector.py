"""The collector over a process that serves several config sets (the manifest's `process`): a row
per set, each with its own version, readiness, rates and labels, split by the `model` label of the
process's one /metrics. Real `mlrm serve` with two sets; the state file is written as `mlrm up` would."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import requests

from mlrm.dashboard.collector import Collector
from mlrm.tools.datasets import breast_cancer
from tests.toolkit.files import copy_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args


def test_a_process_of_several_sets_gets_a_row_per_set(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    sets = [copy_config_set(name, tmp_path / "configs") for name in ("breast-cancer", "machine-anomaly")]
    port = free_port()
    served = spawn(mlrm_args("serve", *map(str, sets), "--port", str(port)), name="serve")
    url = f"http://127.0.0.1:{port}"
    served.wait_http(url + "/v2/health/ready", timeout=60)
    entry = {"name": "models", "kind": "ml", "url": url, "state": "running", "restarts": 0, "pid": served.pid,
             "probes": {"live": "/v2/health/live", "ready": "/v2/health/ready"}, "config_set": None,
             "models": [{"name": "cancer", "config_set": str(sets[0])}, {"name": "anomaly", "config_set": str(sets[1])}]}  # fmt: skip
    state = tmp_path / "gateway.json"
    state.write_text(json.dumps({"gateway": "g", "manifest": "m", "pid": os.getpid(), "started_at": "t",
                                 "services": [entry]}))  # fmt: skip
    collector = Collector(state, interval=1)
    collector.sample()
    instances = [{k: v for k, v in r.items() if k != "diagnosis"} for r in breast_cancer()[:5]]
    for _ in range(3):
        answer = requests.post(f"{url}/v1/models/breast-cancer/predict", json={"instances": instances}, timeout=10)
        assert answer.status_code == 200, answer.text
    collector.sample()

    rows = {row["name"]: row for row in collector.snapshot()["services"]}
    assert set(rows) == {"cancer", "anomaly"}
    cancer, anomaly = rows["cancer"], rows["anomaly"]
    assert cancer["version"] == 1 and cancer["ready"] == "yes" and cancer["url"] == f"{url}/v1/models/breast-cancer"
    assert cancer["series"]["rate"][-1] > 0 and anomaly["series"]["rate"][-1] == 0
    assert sum(n["total"] for n in cancer["labels"].values()) == 15 and anomaly["labels"] == {}
    assert anomaly["version"] == 1 and anomaly["ready"] == "yes"
    # The shipped versions were trained before reference profiles: GET /v1/models/NAME/drift says so.
    for row in (cancer, anomaly):
        assert row["drift"] == {
            "available": False,
            "reason": "version 1 has no reference profile; retrain to record one",
        }
    assert "anomaly detector" in anomaly["performance"]["reason"] and not cancer["performance"]["available"]
