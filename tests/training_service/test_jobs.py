"""Jobs, the gate and triggers, run in-process through the real scheduler
logic (the job runs inline instead of in a forked process), on each store
backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import yaml
from flask import Flask

from mlrm.config.sections import DriftTrigger, Gate, PerformanceTrigger, Triggers
from mlrm.errors import RequestError
from mlrm.storage.versions import VersionStore
from tests.toolkit.files import configure
from tests.toolkit.training import NAME, Finished, inline
from training_service import jobs
from training_service.core import TrainingService
from training_service.gate import decide
from training_service.scheduler import Scheduler
from training_service.store_url import open_store
from training_service.triggers import due


@pytest.fixture
def store_choice(store_url: str) -> str:
    """Every test here on both backends (SQLite, PostgreSQL)."""
    return store_url


def scheduler_of(app: Flask, clock: Any = None) -> tuple[Scheduler, TrainingService]:
    core: TrainingService = app.extensions["training_service"]
    kwargs = {"clock": clock} if clock else {}
    return Scheduler(core.settings, core.store, core.services, launch=inline, **kwargs), core


def post(app: Flask, rows: list[dict[str, Any]]) -> None:
    answer = app.test_client().post(f"/v1/services/{NAME}/samples", json={"records": rows})
    assert answer.status_code == 202, answer.get_json()


def test_better_candidate_is_promoted_with_both_scores_on_one_holdout(
    ts_app: Flask, cancer_rows: list[dict[str, Any]]
) -> None:
    scheduler, core = scheduler_of(ts_app)
    post(ts_app, cancer_rows[:300])
    job, created = core.train(NAME)
    scheduler.tick()  # starts (and here: runs) the job
    scheduler.tick()  # reaps it
    done = core.job(job["id"])
    assert done["state"] == "succeeded", done["error"]
    result = done["result"]
    assert result["promoted"] and result["version"] == 2 and result["previous_version"] == 1
    assert result["candidate_metrics"]["f1_macro"] > result["current_metrics"]["f1_macro"] + 0.1
    assert "improves by" in result["reason"]
    assert done["progress"]["stage"] == "save" and done["progress"]["fraction"] == 1.0
    assert {"queued_s", "load_s", "fit_s", "evaluate_s", "save_s", "total_s"} <= set(done["timings"])
    folder = core.services.get(NAME).learned_dir
    store = VersionStore(folder)
    assert store.current() == 2
    parameters = store.parameters(2)
    assert parameters["data"]["samples_through"] == 300 and parameters["data"]["rows"] == 300
    assert parameters["promoted"] is True and parameters["training_job"]["id"] == job["id"]
    stats = core.stats(NAME)
    assert stats["new_since_current"] == 0 and stats["current_version"] == 2


def test_refused_candidate_is_kept_on_record_and_not_current(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    scheduler, core = scheduler_of(ts_app)
    configure(core.services.get(NAME).path, training={"gate": {"min_score": 0.8}})
    # Garbage in: labels that have nothing to do with the features.
    noisy = [{**r, "diagnosis": ("benign", "malignant")[i % 2]} for i, r in enumerate(cancer_rows[:200])]
    post(ts_app, noisy)
    job, _ = core.train(NAME)
    scheduler.tick()
    result = core.job(job["id"])["result"]
    assert result["promoted"] is False
    assert "below training.gate.min_score 0.8" in result["reason"]
    versions = core.versions(NAME)
    assert versions["current"] == 1
    refused = versions["versions"][-1]
    assert refused["version"] == 2 and refused["promoted"] is False and refused["reason"] == result["reason"]
    assert refused["score"] == result["candidate_metrics"]["f1_macro"]
    # Putting a refused version live takes an explicit force (and, with tokens, the admin scope).
    with pytest.raises(RequestError, match="refused by the promotion gate") as refusal:
        core.rollback(NAME, {"version": 2})
    assert refusal.value.status == 409 and core.versions(NAME)["current"] == 1
    assert core.rollback(NAME, {"version": 2, "force": True}) == {
        "service": NAME, "version": 2, "previous": 1, "forced": True,
    }  # fmt: skip


def test_too_few_samples_fail_the_job_with_the_reason(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    scheduler, core = scheduler_of(ts_app)
    post(ts_app, cancer_rows[:5])
    job, _ = core.train(NAME)
    scheduler.tick()
    done = core.job(job["id"])
    assert done["state"] == "failed"
    assert "only 5 usable samples" in done["error"] and "training.min_rows is 20" in done["error"]
    assert VersionStore(core.services.get(NAME).learned_dir).versions() == [1]


def test_new_samples_trigger_fires_once_per_threshold(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    scheduler, core = scheduler_of(ts_app)
    configure(core.services.get(NAME).path, training={"triggers": {"new_samples": 100}})
    post(ts_app, cancer_rows[:90])
    scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []
    post(ts_app, cancer_rows[90:110])
    scheduler.tick()
    (job,) = core.jobs(NAME)["jobs"]
    assert job["trigger"] == "new_samples" and job["state"] == "succeeded"
    scheduler.tick()
    scheduler.tick()
    assert len(core.jobs(NAME)["jobs"]) == 1
    assert core.stats(NAME)["new_since_last_training"] == 0


def test_interval_trigger_needs_new_samples_and_time(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    now = [1000.0]
    scheduler, core = scheduler_of(ts_app, clock=lambda: now[0])
    configure(core.services.get(NAME).path, training={"triggers": {"interval": 60}})
    now[0] += 61
    scheduler.tick()
    assert core.jobs(NAME)["jobs"] == []  # time passed, but no new sample
    post(ts_app, cancer_rows[:40])
    scheduler.tick()
    assert core.jobs(NAME)["jobs"][0]["trigger"] == "interval"


def test_a_job_interrupted_after_write_back_resumes_without_writing_twice(
    ts_app: Flask, cancer_rows: list[dict[str, Any]]
) -> None:
    scheduler, core = scheduler_of(ts_app)
    if not core.store.url.startswith("sqlite"):
        pytest.skip("rewrites the job row with sqlite3; the same resume on PostgreSQL is test_instances.py's")
    post(ts_app, cancer_rows[:200])
    job, _ = core.train(NAME)
    scheduler.tick()
    # As if the service had been killed after the version's rename, before current.yaml and the job row:
    versions = VersionStore(core.services.get(NAME).learned_dir)
    versions.set_current(1)
    with sqlite3.connect(core.store.path) as db:  # type: ignore[attr-defined]
        db.execute("UPDATE jobs SET state = 'running', result = NULL WHERE id = ?", (job["id"],))
    fresh = Scheduler(core.settings, core.store, core.services, launch=inline)
    fresh.tick()  # the job's process is gone (its lock is free): back to the queue
    assert core.job(job["id"])["state"] == "queued"
    fresh.tick()
    done = core.job(job["id"])
    assert done["state"] == "succeeded" and done["attempts"] == 2
    assert done["result"]["resumed"] is True and done["result"]["version"] == 2
    assert versions.versions() == [1, 2] and versions.current() == 2


def test_the_gate_compares_with_the_metric_direction() -> None:
    gate = Gate(min_score=None, max_drop=0.02, min_rows=1)
    assert decide("f1_macro", gate, {"f1_macro": 0.90}, {"f1_macro": 0.91}).promote
    assert not decide("f1_macro", gate, {"f1_macro": 0.88}, {"f1_macro": 0.91}).promote
    assert decide("f1_macro", gate, {"f1_macro": 0.5}, None).promote
    assert decide("rmse", gate, {"rmse": 1.0}, {"rmse": 2.0}).promote
    refused = decide("rmse", gate, {"rmse": 2.5}, {"rmse": 2.0})
    assert not refused.promote and "would drop by 0.5000" in refused.reason
    floor = decide("rmse", Gate(min_score=1.5, max_drop=0.0, min_rows=1), {"rmse": 1.6}, None)
    assert not floor.promote and "above training.gate.min_score 1.5" in floor.reason
    assert decide(
        "f1_macro", Gate(min_score=None, max_drop=0.0, min_rows=1), {"f1_macro": 0.9}, {"f1_macro": 0.9}
    ).promote


MONITORS_OFF: dict[str, Any] = {
    "drift": DriftTrigger(threshold=None, min_rows=1), "performance": PerformanceTrigger(max_drop=None, min_rows=1),
}  # fmt: skip


@pytest.mark.parametrize(
    ("triggers", "new", "elapsed", "expected"),
    [
        (Triggers(new_samples=10, interval=None, **MONITORS_OFF), 9, 1e9, None),
        (Triggers(new_samples=10, interval=None, **MONITORS_OFF), 10, 0, "new_samples"),
        (Triggers(new_samples=None, interval=60, **MONITORS_OFF), 1, 59, None),
        (Triggers(new_samples=None, interval=60, **MONITORS_OFF), 1, 60, "interval"),
        (Triggers(new_samples=None, interval=60, **MONITORS_OFF), 0, 1e9, None),
        (Triggers(new_samples=None, interval=None, **MONITORS_OFF), 1000, 1e9, None),
    ],
)
def test_triggers(triggers: Triggers, new: int, elapsed: float, expected: str | None) -> None:
    assert due(triggers, new, elapsed) == expected


def test_store_urls_are_checked(tmp_path: Any) -> None:
    from mlrm.errors import StoreError

    for url, message in [
        ("postgresql://db/mlrm?schema=No-Such", "schema='No-Such' is not a plain lower-case name"),
        ("sqlite://", "no file named"),
        (f"sqlite:///{tmp_path}/x.sqlite?cache=1", "unknown option 'cache'"),
        ("mysql://x", "unknown store scheme"),
    ]:
        with pytest.raises(StoreError, match=message):
            open_store(url)
    store = open_store(f"sqlite:///{tmp_path}/a.sqlite?synchronous=normal")
    store.migrate()
    assert store.url.endswith("?synchronous=normal")
    assert yaml.safe_load("a: 1") == {"a": 1}


def test_the_holdout_is_stable_as_data_grows(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    import numpy as np

    from mlrm.training.trainer import dataset
    from training_service.holdout import stable_split

    config = ts_app.extensions["training_service"].services.get(NAME)

    def held(n: int) -> set[float]:
        data = dataset(config, cancer_rows[:n])
        _, holdout, how = stable_split(config, data, np.arange(1, n + 1))
        assert how == "stable by sample id"
        return {float(x) for x in holdout.X[:, 0] * 1e6 + holdout.X[:, 1]}

    small, large = held(200), held(560)
    assert small <= large  # a sample held out once stays held out
    assert 0.15 < len(large) / 560 < 0.35  # about training.holdout (0.25 here)


class StoodAside(Finished):
    """A job process that found the job's lock held by another and exited without touching the job."""

    exitcode = jobs.LOCK_BUSY


def test_a_job_left_running_by_a_killed_scheduler_is_waited_for_not_doubled(
    ts_app: Flask, cancer_rows: list[dict[str, Any]]
) -> None:
    core: TrainingService = ts_app.extensions["training_service"]
    post(ts_app, cancer_rows[:50])
    job, _ = core.train(NAME)
    orphan = core.store.try_lock(f"job-{NAME}")  # the job process of a scheduler that was killed, still running
    assert orphan is not None
    scheduler = Scheduler(core.settings, core.store, core.services, launch=lambda url, j: StoodAside())
    scheduler.tick()  # starts a process, which stands aside
    core.store.start_job(job["id"], 4242)  # meanwhile the orphan records its start
    scheduler.tick()  # reaps the one that stood aside: not an attempt, nothing requeued
    scheduler.tick()  # the job is running under a held lock: left alone
    running = core.job(job["id"])
    assert running["state"] == "running" and running["attempts"] == 1
    orphan.release()  # the orphan dies
    scheduler.tick()
    assert core.job(job["id"])["state"] == "queued"
