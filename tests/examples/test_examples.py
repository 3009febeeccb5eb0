"""Every example consumer runs briefly against a real `mlrm serve` and does
what its docstring says; the air-quality one retrains through the training
service when its forecasts drift, and sees the new version answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.toolkit.examples import run_example
from tests.toolkit.files import copy_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args


@pytest.fixture
def training_service(tmp_path: Path, spawn: Callable[..., Process]) -> Iterator[Callable[[str], tuple[str, Path]]]:
    """start(name) -> (URL, config set): a private copy of configs/NAME under a
    real `mlrm training-service` of its own. The copy exists before the service
    starts, because the service finds its config sets at start-up."""
    root = tmp_path / "configs"
    root.mkdir()

    def start(name: str) -> tuple[str, Path]:
        folder = copy_config_set(name, root)
        port = free_port()
        store = f"sqlite:///{tmp_path / 'training.sqlite'}"
        process = spawn(
            mlrm_args("training-service", "--config-root", str(root), "--port", str(port), "--store", store),
            name="training",
        )
        process.wait_http(f"http://127.0.0.1:{port}/v1/health")
        return f"http://127.0.0.1:{port}", folder

    yield start


def test_pcb_inspection_consumer_asks_per_board_and_carries_on_without_a_training_service(
    tmp_path: Path, serve: Callable[..., tuple[str, Process]]
) -> None:
    url, _ = serve(copy_config_set("pcb-inspection", tmp_path))
    nowhere = f"http://127.0.0.1:{free_port()}"
    figures = run_example("pcb_inspection.py", "--url", url, "--training-url", nowhere, "--count", "25")
    assert figures["boards"] == 25 and figures["pads"] == 200
    assert figures["agreement"] > 0.85 and figures["verdicts"]["pseudo-error"] > 0
    assert figures["training"] == "unreachable" and figures["samples_sent"] == 0
    assert f"training service at {nowhere} not reachable" in figures["stdout"]
    assert figures["stdout"].count("not reachable") == 1, "said once, not per board"


def test_machine_anomaly_consumer_flags_the_failing_bearing(
    tmp_path: Path, serve: Callable[..., tuple[str, Process]]
) -> None:
    url, _ = serve(copy_config_set("machine-anomaly", tmp_path))
    figures = run_example("machine_anomaly.py", "--url", url, "--count", "500", "--fault-after", "300")
    assert figures["readings"] == 500
    assert figures["false_alarm_rate"] < 0.08 and figures["fault_detected_rate"] > 0.4, figures
    assert figures["alarm_at"] is not None and 300 <= figures["alarm_at"] < 400
    assert "ALARM" in figures["stdout"]


def test_breast_cancer_consumer_posts_the_pathologists_diagnosis(
    serve: Callable[..., tuple[str, Process]], training_service: Callable[[str], tuple[str, Path]]
) -> None:
    training_url, folder = training_service("breast-cancer")
    url, _ = serve(folder)
    figures = run_example("breast_cancer.py", "--url", url, "--training-url", training_url, "--count", "60")
    assert figures["cases"] == 60 and figures["accuracy"] > 0.9
    assert figures["training"] == "reachable" and figures["samples_sent"] == 60


def test_air_quality_consumer_retrains_when_its_forecasts_drift(
    serve: Callable[..., tuple[str, Process]], training_service: Callable[[str], tuple[str, Path]]
) -> None:
    training_url, folder = training_service("air-quality")
    url, _ = serve(folder)
    # A clogged filter from the start; 480 readings of 5 minutes = 1.67 days.
    figures = run_example(
        "air_quality.py", "--url", url, "--training-url", training_url, "--ventilation", "0.4", "--count", "480"
    )
    assert figures["training"] == "reachable" and figures["samples_sent"] >= 96
    assert len(figures["retrains"]) >= 1 and figures["retrains"][0]["mae"] > 60, figures
    assert figures["versions_seen"][0] == 1, figures

    # The service polls for new versions every second and a real training
    # service trains in a job: the consumer may finish before the switch.
    def serving() -> int:  # /v1/config checks for a new version first (GET / does not)
        return int(requests.get(url + "/v1/config", timeout=5).json()["status"]["version"])

    deadline = time.monotonic() + 30
    while serving() == 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert serving() >= 2, figures["stdout"][-2500:]
