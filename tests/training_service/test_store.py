"""The SQLite store: durable settings, one transaction per batch with its
key, one active job per service, locks that die with their holder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.toolkit.processes import env
from training_service.sqlite_store import SQLiteStore
from training_service.store import Sample


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "training.sqlite")
    s.migrate()
    return s


def samples(n: int) -> list[Sample]:
    return [Sample({"x": i}, "a") for i in range(n)]


def test_commits_are_durable_wal_with_full_sync(store: SQLiteStore) -> None:
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is fsynced at every COMMIT


def test_a_batch_and_its_key_commit_together_or_not_at_all(store: SQLiteStore) -> None:
    def explode(ids: list[int], batch: int) -> dict[str, Any]:
        raise RuntimeError("crash before COMMIT")

    with pytest.raises(RuntimeError):
        store.add_batch("s", samples(3), "k", "f", explode)
    assert store.last_sample_id("s") == 0 and store.find_batch("s", "k") is None
    response, replayed = store.add_batch("s", samples(3), "k", "f", lambda ids, b: {"ids": ids})
    assert (response, replayed) == ({"ids": [1, 2, 3]}, False)
    assert store.add_batch("s", samples(3), "k", "f", lambda ids, b: {"ids": ids}) == ({"ids": [1, 2, 3]}, True)
    assert store.records("s", 10) == [{"x": 0}, {"x": 1}, {"x": 2}]


def test_concurrent_retries_with_one_key_store_once(store: SQLiteStore) -> None:
    results: list[tuple[dict[str, Any], bool]] = []

    def post() -> None:
        results.append(store.add_batch("s", samples(50), "same", "f", lambda ids, b: {"ids": ids}))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r[1] for r in results) == [False, True, True, True]
    assert store.count_since("s", 0) == 50


def test_one_active_job_per_service(store: SQLiteStore) -> None:
    job, created = store.create_job("s", "/cs", "on_demand")
    again, created_again = store.create_job("s", "/cs", "new_samples")
    other, created_other = store.create_job("t", "/ct", "on_demand")
    assert created and not created_again and again.id == job.id and created_other
    store.start_job(job.id, 123)
    store.finish_job(job.id, "succeeded", result={"ok": True}, error=None, timings={"total_s": 1})
    assert store.create_job("s", "/cs", "on_demand")[1]


def test_requeue_gives_up_after_max_attempts(store: SQLiteStore) -> None:
    job, _ = store.create_job("s", "/cs", "on_demand")
    for attempt in (1, 2):
        store.start_job(job.id, 1)
        assert store.requeue_job(job.id, "killed", max_attempts=2) == ("queued" if attempt == 1 else "failed")
    failed = store.job(job.id)
    assert failed is not None and failed.state == "failed" and "gave up after 2 attempts" in (failed.error or "")


def test_a_lock_is_freed_when_its_holder_is_killed(store: SQLiteStore) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from training_service.sqlite_store import SQLiteStore; "
         f"lock = SQLiteStore({str(store.path)!r}).try_lock('job-s'); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, env=env(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert store.try_lock("job-s") is None
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
    lock = store.try_lock("job-s")
    assert lock is not None
    lock.release()
