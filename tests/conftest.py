"""Fixtures chain config_set -> app -> client; `spawn` starts real processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mlrm.config import ServiceConfig, load_config_set
from mlrm.rest import create_app
from mlrm.tools.datasets import pcb_inspection
from tests.servers import ROOT, Process, free_port, mlrm_args

CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def pcb_rows() -> list[dict[str, Any]]:
    """Labelled synthetic PCB rows (features plus 'result')."""
    return pcb_inspection(rows=1500, seed=11)


@pytest.fixture
def pcb_instance(pcb_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One valid predict instance (no target)."""
    return {k: v for k, v in pcb_rows[0].items() if k != "result"}


def copy_config_set(name: str, dest: Path, *, learned: bool = True) -> Path:
    """A private copy of a shipped config set (with or without its learned state)."""
    target = dest / name
    ignore = None if learned else shutil.ignore_patterns("learned")
    shutil.copytree(CONFIGS / name, target, ignore=ignore)
    return target


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
    """Run `mlrm serve` on a free loopback port; returns (base URL, process) once it answers."""

    def start(config_set: Path, *extra: str, ready: int = 200) -> tuple[str, Process]:
        port = free_port()
        process = spawn(mlrm_args("serve", str(config_set), "--port", str(port), *extra), name="serve")
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/v2/health/live")
        return url, process

    return start
