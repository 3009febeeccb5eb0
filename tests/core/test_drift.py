"""Drift in one process (mlrm.core.drift): PSI, the sliding window, sampling above max_rate, and the
reasons given when no figure can be: a version without a profile, monitoring off, no model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlrm.config import load_config_set
from mlrm.core.drift import BUCKETS, DriftMonitor, psi
from mlrm.core.service import Service
from mlrm.errors import ConfigError
from mlrm.rest.app import create_app
from mlrm.tools.datasets import pcb_inspection
from mlrm.training import trainer
from tests.toolkit.files import configure, copy_config_set

NAME = "pcb-inspection-lr"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/pcb-inspection-lr retrained here, so its version has a reference profile."""
    folder = copy_config_set(NAME, tmp_path_factory.mktemp("drift"), learned=False)
    trainer.train(load_config_set(folder), pcb_inspection(3000, seed=1))
    return folder


def instances(n: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_inspection(n, seed=seed)]
    for r in rows:
        r["volume_pct"] += shift
    return rows


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    reference = np.array([100.0, 100, 100, 100])
    assert psi(reference, reference * 3) == pytest.approx(0, abs=1e-12)
    assert psi(reference, np.array([0.0, 100, 100, 200])) > psi(reference, np.array([80.0, 100, 100, 120])) > 0
    assert np.isfinite(psi(reference, np.array([400.0, 0, 0, 0])))  # empty bins are smoothed, not infinite


def test_window_slides_and_a_busy_process_counts_an_even_sample(trained: Path, tmp_path: Path) -> None:
    config = load_config_set(trained)
    service = Service(config)
    clock = Clock()
    monitor = DriftMonitor(config, None, clock=clock)
    assert service.model is not None
    monitor.attach(service.model)
    rows = instances(50, seed=5)
    for i in range(0, 50, 5):
        service.predict(rows[i : i + 5])
    report = monitor.report()
    assert report["window"] == {"seconds": 3600, "rows": 50, "predicted": 50, "min_rows": 200, "enough": False}
    assert report["overall"]["level"] == "insufficient" and report["overall"]["psi"] > 0

    clock.now += 3600 * (BUCKETS - 1) / BUCKETS  # still inside the window
    assert monitor.report()["window"]["rows"] == 50
    clock.now += 3600 / BUCKETS  # those rows' step has slid out
    emptied = monitor.report()
    assert emptied["window"]["rows"] == 0 and emptied["overall"]["psi"] is None

    # 4000 rows a second against max_rate 500: once the rate is known (each drain looks back a second
    # or more), only every k-th batch is counted; every row predicted still shows in `predicted`.
    batch = instances(10, seed=6)
    for _ in range(2):
        for _ in range(400):
            service.predict(batch)
        clock.now += 1.0
    window = monitor.report()["window"]
    assert window["predicted"] == 8000 and 4000 < window["rows"] < 8000


def test_version_without_a_profile_says_so_and_serves(tmp_path: Path) -> None:
    folder = copy_config_set(NAME, tmp_path)  # shipped: trained before profiles existed
    service = Service(load_config_set(folder))
    assert service.predict(instances(1, seed=1))["model"]["version"] == 1
    report = service.drift_report()
    assert report["available"] is False
    assert report["reason"] == "version 1 has no reference profile; retrain to record one"
    client = create_app(service.config, service=service).test_client()
    assert client.get("/v1/drift").json == report
    shown = client.get("/v1/config").json
    assert shown is not None and shown["learned"]["profile"] is None
    assert "mlrm_drift_psi" not in client.get("/metrics").text.replace("# HELP mlrm_drift_psi", "").replace(
        "# TYPE mlrm_drift_psi", ""
    )


def test_monitoring_off_and_a_misspelt_key(trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "off"
    folder.mkdir()
    copy = copy_config_set(NAME, folder, learned=False)
    configure(copy, serving={"drift": {"enabled": False}})
    service = Service(load_config_set(copy))
    assert service.drift is None
    assert "serving.drift.enabled: false" in service.drift_report()["reason"]

    configure(copy, serving={"drift": {"windw": 60}})
    with pytest.raises(ConfigError, match="windw: unknown key 'windw'. Did you mean 'window'"):
        load_config_set(copy)
