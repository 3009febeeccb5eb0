"""The monitor triggers (training.triggers.drift, .performance) through the real scheduler logic: an ML
service's report arrives on PUT /v1/services/{name}/monitors, a trigger fires once its min_rows new samples
arrived, with its figures in the job and in the new version's parameters.yaml; on each store backend."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from mlrm.storage.versions import VersionStore
from tests.toolkit.files import configure
from tests.toolkit.training import NAME, inline
from training_service.core import TrainingService
from training_service.scheduler import Scheduler


@pytest.fixture
def store_choice(store_url: str) -> str:
    """Every test here on both backends (SQLite, PostgreSQL)."""
    return store_url


def scheduler_of(app: Flask) -> tuple[Scheduler, TrainingService]:
    core: TrainingService = app.extensions["training_service"]
    return Scheduler(core.settings, core.store, core.services, launch=inline), core


def drift(psi: float, version: int | None = 1, rows: int = 300) -> dict[str, Any]:
    return {
        "model": {"name": NAME, "version": version}, "available": True, "reason": None,
        "window": {"seconds": 3600, "rows": rows, "min_rows": 200, "enough": rows >= 200},
        "overall": {"psi": psi, "input": "mean_radius", "level": "significant" if psi >= 0.25 else "none"},
    }  # fmt: skip


def performance(drop: float, version: int = 1, rows: int = 80) -> dict[str, Any]:
    return {
        "model": {"name": NAME, "version": version}, "available": True, "reason": None, "metric": "f1_macro",
        "holdout": 0.95, "rolling": 0.95 - drop, "drop": drop, "window": {"seconds": 3600, "rows": rows},
    }  # fmt: skip


def report(app: Flask, **monitors: Any) -> dict[str, Any]:
    answer = app.test_client().put(f"/v1/services/{NAME}/monitors", json=monitors)
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def post(app: Flask, rows: list[dict[str, Any]]) -> None:
    answer = app.test_client().post(f"/v1/services/{NAME}/samples", json={"records": rows})
    assert answer.status_code == 202, answer.get_json()


def test_drift_fires_with_the_reason_in_the_job_and_the_version_and_again_only_after_new_data(
    ts_app: Flask, cancer_rows: list[dict[str, Any]]
) -> None:
    scheduler, core = scheduler_of(ts_app)
    configure(core.services.get(NAME).path, training={"triggers": {"drift": {"threshold": 0.25, "min_rows": 150}}})
    post(ts_app, cancer_rows[:200])
    assert report(ts_app, drift=drift(0.1))["would_fire"] is None
    scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []  # below the threshold
    answer = report(ts_app, drift=drift(0.41))
    reason = "drift: psi 0.410 on mean_radius >= 0.25 over 300 rows (version 1)"
    assert answer["would_fire"] == reason and answer["current_version"] == 1
    scheduler.tick()
    (job,) = core.jobs(NAME)["jobs"]
    assert job["trigger"] == reason and job["state"] == "succeeded", job["error"]
    version = job["result"]["version"]
    assert VersionStore(core.services.get(NAME).learned_dir).parameters(version)["training_job"]["trigger"] == reason
    # The drift goes on: it fires again only after min_rows new samples to learn from.
    report(ts_app, drift=drift(0.41, version=version if job["result"]["promoted"] else 1))
    post(ts_app, cancer_rows[200:349])
    scheduler.tick()
    assert len(core.jobs(NAME)["jobs"]) == 1
    post(ts_app, cancer_rows[349:350])
    scheduler.tick()
    assert len(core.jobs(NAME)["jobs"]) == 2
    assert core.monitors(NAME)["drift"]["overall"]["psi"] == 0.41


def test_drift_needs_new_samples_and_a_full_window(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    scheduler, core = scheduler_of(ts_app)
    configure(core.services.get(NAME).path, training={"triggers": {"drift": {"threshold": 0.25, "min_rows": 40}}})
    report(ts_app, drift=drift(0.9, rows=600))
    scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []  # no sample since the current version: nothing new to learn from
    post(ts_app, cancer_rows[:39])
    scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []  # fewer new samples than training.triggers.drift.min_rows
    post(ts_app, cancer_rows[39:50])
    report(ts_app, drift=drift(0.9, rows=39))
    scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []  # a window of fewer rows than training.triggers.drift.min_rows
    report(ts_app, drift=drift(0.9, rows=600))
    scheduler.tick()
    assert core.jobs(NAME)["jobs"][0]["trigger"].startswith("drift: psi 0.900")


def test_performance_fires_past_the_allowed_drop_only(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    scheduler, core = scheduler_of(ts_app)
    configure(core.services.get(NAME).path, training={"triggers": {"performance": {"max_drop": 0.1, "min_rows": 50}}})
    post(ts_app, cancer_rows[:100])
    for quiet in (performance(0.1), performance(0.3, rows=49), performance(0.3, version=7)):
        report(ts_app, performance=quiet)
        scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []
    report(ts_app, drift=drift(0.9), performance=performance(0.3))  # the drift trigger is off here
    scheduler.tick()
    (job,) = core.jobs(NAME)["jobs"]
    assert job["trigger"] == (
        "performance: f1_macro 0.650 live vs 0.950 on the holdout, a drop of 0.300 > 0.1 over 80 rows (version 1)"
    )


def test_a_report_of_another_shape_is_refused_with_the_key(ts_app: Flask) -> None:
    answer = ts_app.test_client().put(f"/v1/services/{NAME}/monitors", json={"drfit": {}})
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["pointer"] == "/drfit"
    assert ts_app.test_client().put("/v1/services/nope/monitors", json={}).status_code == 404
