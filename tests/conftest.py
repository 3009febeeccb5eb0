"""Fixtures chain config_set -> app -> client; `spawn` starts real processes;
`root` and `training_service` give any test a real training service. The helpers
they call are in tests/toolkit/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from mlrm.config import ServiceConfig, load_config_set
from mlrm.rest import create_app
from mlrm.tools.datasets import breast_cancer, pcb_inspection
from tests.toolkit.files import configure, copy_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args
from tests.toolkit.training import NAME, weak_version


@pytest.fixture(scope="session")
def pcb_rows() -> list[dict[str, Any]]:
    """Labelled synthetic PCB rows (features plus 'result')."""
    return pcb_inspection(rows=1500, seed=11)


@pytest.fixture
def pcb_instance(pcb_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One valid predict instance (no target)."""
    return {k: v for k, v in pcb_rows[0].items() if k != "result"}


@pytest.fixture
def config_set(tmp_path: Path) -> Path:
    """A trained copy of configs/pcb-inspection."""
    return copy_config_set("pcb-inspection", tmp_path)


@pytest.fixture
def config(config_set: Path) -> ServiceConfig:
    return load_config_set(config_set)


@pytest.fixture
def app(config: ServiceConfig) -> Flask:
    return create_app(config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start real processes; all are stopped at teardown."""
    started: list[Process] = []

    def start(args: list[str], name: str = "proc", cwd: Path | None = None) -> Process:
        process = Process(args, tmp_path / f"{name}-{len(started)}.log", cwd)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


@pytest.fixture
def serve(spawn: Callable[..., Process]) -> Callable[..., tuple[str, Process]]:
    """Run `mlrm serve` (one config set, or a list: several in one process) on a free loopback port;
    returns (base URL, process) once it answers."""

    def start(config_set: Path | list[Path], *extra: str, ready: int = 200) -> tuple[str, Process]:
        port = free_port()
        sets = [str(p) for p in (config_set if isinstance(config_set, list) else [config_set])]
        process = spawn(mlrm_args("serve", *sets, "--port", str(port), *extra), name="serve")
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/v2/health/live")
        return url, process

    return start


@pytest.fixture(scope="session")
def cancer_rows() -> list[dict[str, Any]]:
    """All 569 labelled breast-cancer rows, shuffled once (seeded)."""
    rows = breast_cancer()
    order = np.random.default_rng(0).permutation(len(rows))
    return [rows[i] for i in order]


@pytest.fixture
def root(tmp_path: Path, cancer_rows: list[dict[str, Any]]) -> Path:
    """A config root holding breast-cancer with a weak version 1 and fast reloads."""
    folder = copy_config_set(NAME, tmp_path / "root")
    configure(folder, serving={"reload_interval": 0.2})
    weak_version(folder, cancer_rows)
    return tmp_path / "root"


@pytest.fixture
def training_service(spawn: Callable[..., Process]) -> Callable[..., tuple[str, Process]]:
    """Run the real `mlrm training-service` on a free port; (base URL, process) once it answers."""

    def start(root: Path, *extra: str, store: str | None = None, port: int | None = None) -> tuple[str, Process]:
        port = port or free_port()
        args = ["training-service", "--config-root", str(root), "--port", str(port), "--poll-interval", "0.1"]
        if store:
            args += ["--store", store]
        process = spawn(mlrm_args(*args, *extra), name="training-service")
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/v1/health")
        return url, process

    return start
