"""training.data (base files kept in the config set, a window of stored samples) and the gate's unseen rows,
through the real scheduler logic on each store backend."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from mlrm.config import load_config_set
from mlrm.errors import ConfigError
from mlrm.storage.versions import VersionStore
from tests.toolkit.files import configure
from tests.toolkit.training import NAME, inline
from training_service.core import TrainingService
from training_service.scheduler import Scheduler


@pytest.fixture
def store_choice(store_url: str) -> str:
    """Every test here on both backends (SQLite, PostgreSQL)."""
    return store_url


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_job(app: Flask) -> dict[str, Any]:
    core: TrainingService = app.extensions["training_service"]
    job, _ = core.train(NAME)
    Scheduler(core.settings, core.store, core.services, launch=inline).tick()
    done = core.job(job["id"])
    assert done["state"] == "succeeded", done["error"]
    result: dict[str, Any] = done["result"]
    return result


def post(app: Flask, rows: list[dict[str, Any]]) -> None:
    answer = app.test_client().post(f"/v1/services/{NAME}/samples", json={"records": rows})
    assert answer.status_code == 202, answer.get_json()


def test_a_retrain_learns_from_the_base_file_and_the_newest_samples(
    ts_app: Flask, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    write_csv(root / NAME / "data" / "initial.csv", cancer_rows[:300])
    configure(root / NAME, training={"data": {"files": ["data/initial.csv"], "samples": {"last": 40}}})
    post(ts_app, cancer_rows[300:400])
    result = run_job(ts_app)
    assert result["base_rows"] == 300 and result["rows"] == 340  # 300 from the file, the newest 40 samples
    parameters = VersionStore(root / NAME / "learned").parameters(result["version"])
    rule = parameters["data"]["holdout_rule"]
    assert rule["seed"] == 42 and list(rule["files"]) == ["data/initial.csv"] and parameters["data"]["samples"] == 40
    # Version 1 (from `mlrm train`) may have seen any row of the file: only samples after it are compared on.
    assert "received after the current version" in result["gate_rows_how"]
    assert result["gate_rows"] < result["holdout_rows"]
    # The next run holds the same rows out as the version it would replace: every held-out row counts.
    post(ts_app, cancer_rows[400:420])
    again = run_job(ts_app)
    if result["promoted"]:
        assert again["gate_rows"] == again["holdout_rows"] and "same holdout rule" in again["gate_rows_how"]


def test_the_gate_keeps_the_current_version_with_too_few_unseen_rows(
    ts_app: Flask, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    configure(root / NAME, training={"gate": {"min_rows": 1000}})
    post(ts_app, cancer_rows[:200])
    result = run_job(ts_app)
    assert result["promoted"] is False
    assert result["reason"] == (
        f"too few unseen rows ({result['gate_rows']} < training.gate.min_rows 1000) to compare with the current "
        "version; kept current"
    )
    assert VersionStore(root / NAME / "learned").current() == 1


def test_a_changed_rule_compares_only_on_samples_the_current_version_never_saw(
    ts_app: Flask, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    configure(root / NAME, training={"gate": {"min_rows": 5}})
    post(ts_app, cancer_rows[:300])
    first = run_job(ts_app)
    assert first["promoted"] is True
    configure(root / NAME, training={"seed": 7})  # another split: version 2 trained on some of the new holdout
    post(ts_app, cancer_rows[300:302])
    second = run_job(ts_app)
    assert second["gate_rows"] <= 2 and second["promoted"] is False and "too few unseen rows" in second["reason"]


def test_base_files_are_checked_when_the_config_set_loads_and_when_a_job_reads_them(
    ts_app: Flask, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    folder = root / NAME
    configure(folder, training={"data": {"files": ["data/initial.csv"]}})
    with pytest.raises(ConfigError, match=r"training\.data\.files\[0\]: no file 'data/initial.csv'"):
        load_config_set(folder)
    configure(folder, training={"data": {"files": ["../elsewhere.csv"]}})
    with pytest.raises(ConfigError, match="outside the config set"):
        load_config_set(folder)
    write_csv(folder / "data" / "initial.csv", [*cancer_rows[:50], {**cancer_rows[50], "diagnosis": "flu"}])
    configure(folder, training={"data": {"files": ["data/initial.csv"]}})
    core: TrainingService = ts_app.extensions["training_service"]
    post(ts_app, cancer_rows[100:150])
    job, _ = core.train(NAME)
    Scheduler(core.settings, core.store, core.services, launch=inline).tick()
    failed = core.job(job["id"])
    assert failed["state"] == "failed"
    assert "initial.csv: 1 row(s) fail" in failed["error"] and "/rows/50/diagnosis" in failed["error"]
    assert "training.data.files[0]; fix or remove those rows" in failed["error"]
