"""Fixtures for the training service: a config root with a private copy of
breast-cancer (a weak version 1, so better data visibly helps), the Flask app
in-process, and the real `mlrm training-service` on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from mlrm.config import load_config_set
from mlrm.tools.datasets import breast_cancer
from mlrm.training import trainer
from tests.conftest import copy_config_set
from tests.servers import Process, free_port, mlrm_args
from training_service.api import create_app
from training_service.settings import Settings

NAME = "breast-cancer"


def configure(folder: Path, **sections: dict[str, Any]) -> None:
    """Merge sections into a config set's service.yaml (e.g. training={"triggers": {...}})."""
    file = folder / "service.yaml"
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    for key, value in sections.items():
        current = raw.get(key) or {}
        for sub, v in value.items():
            if isinstance(v, dict) and isinstance(current.get(sub), dict):
                current[sub] = {**current[sub], **v}
            else:
                current[sub] = v
        raw[key] = current
    file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="session")
def cancer_rows() -> list[dict[str, Any]]:
    """All 569 labelled breast-cancer rows, shuffled once (seeded)."""
    rows = breast_cancer()
    order = np.random.default_rng(0).permutation(len(rows))
    return [rows[i] for i in order]


def weak_version(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the shipped learned state by a poor version 1: 30 rows, 30% of labels flipped."""
    import shutil

    shutil.rmtree(folder / "learned", ignore_errors=True)
    weak = [dict(r) for r in rows[:30]]
    for r in weak[:9]:
        r["diagnosis"] = "benign" if r["diagnosis"] == "malignant" else "malignant"
    trainer.train(load_config_set(folder), weak)


@pytest.fixture
def root(tmp_path: Path, cancer_rows: list[dict[str, Any]]) -> Path:
    """A config root holding breast-cancer with a weak version 1 and fast reloads."""
    folder = copy_config_set(NAME, tmp_path / "root")
    configure(folder, serving={"reload_interval": 0.2})
    weak_version(folder, cancer_rows)
    return tmp_path / "root"


@pytest.fixture
def settings(root: Path) -> Settings:
    return Settings(config_root=root, max_records=500, max_body_bytes=1024 * 1024, poll_interval=0.1)


@pytest.fixture
def ts_app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def ts_client(ts_app: Flask) -> FlaskClient:
    return ts_app.test_client()


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
