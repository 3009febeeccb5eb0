"""The drift scenario against real processes (`mlrm training-service`, `mlrm serve`): the air-quality sensors'
calibration shifts, the service's drift passes training.triggers.drift's threshold, the training service
retrains on its own from data/initial.csv and the newest samples, the gate promotes the candidate, and its
live error (GET /v1/performance) is back near the first version's before the drift. docs/drift.md quotes a run."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

from mlrm.config import load_config_set
from mlrm.tools.simulation.rooms import air_quality
from mlrm.training import trainer
from tests.toolkit.examples import run_example
from tests.toolkit.files import configure, copy_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args


def test_drifting_sensors_are_noticed_and_a_retrained_version_takes_over(
    tmp_path: Path, spawn: Callable[..., Process], serve: Callable[..., tuple[str, Process]]
) -> None:
    root = tmp_path / "configs"
    folder = copy_config_set("air-quality", root)
    rows = air_quality(rows=600, seed=7)
    (folder / "data").mkdir()
    with (folder / "data" / "initial.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    port = free_port()
    configure(
        folder,
        serving={"reload_interval": 0.5, "drift": {"window": 60, "min_rows": 100}},
        training={
            "triggers": {"new_samples": None, "drift": {"threshold": 0.25, "min_rows": 300}},
            "data": {"files": ["data/initial.csv"], "samples": {"last": 600}},
        },
        feedback={"training_service": f"http://127.0.0.1:{port}", "retry_interval": 0.5},
    )
    shutil.rmtree(folder / "learned")
    trainer.train(load_config_set(folder), rows)  # version 1, with its reference profile
    store = f"sqlite:///{tmp_path / 'training.sqlite'}"
    training = spawn(
        mlrm_args("training-service", "--config-root", str(root), "--port", str(port), "--store", store,
                  "--poll-interval", "0.1"),
        name="training",
    )  # fmt: skip
    training_url = f"http://127.0.0.1:{port}"
    training.wait_http(f"{training_url}/v1/health")
    url, _ = serve(folder)

    figures = run_example(
        "air_quality_drift.py", "--url", url, "--training-url", training_url, "--count", "2000", "--seconds", "150",
        timeout=200,
    )  # fmt: skip
    print(figures["stdout"][-3000:])
    better, mae = figures["better"], figures["mae"]
    assert better is not None, figures["stdout"][-3000:]
    assert figures["trigger"].startswith("drift: psi ") and " on co2_ppm >= 0.25 over " in figures["trigger"]
    # The first version is far off once its inputs drift; the one that took over is not.
    assert mae["v1 after drift"] > 2 * mae["v1 before drift"], mae
    live = figures["performance"]  # GET /v1/performance at the end: the version serving, scored by feedback
    assert live["model"]["version"] >= better["version"] and live["metric"] == "mae" and live["window"]["rows"] > 0
    assert live["rolling"] < mae["v1 after drift"] / 2, live
