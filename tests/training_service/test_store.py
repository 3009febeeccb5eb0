"""The store, on both backends (SQLite, PostgreSQL): durable commits, one transaction per
batch with its key, one active job per service, review and retention, locks that die
with their holder; and the URL: checked, its password never shown."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlrm.errors import StoreError
from tests.toolkit.postgres import fresh_schema
from tests.toolkit.processes import env
from tests.toolkit.waiting import wait_until
from training_service import jobs
from training_service.selector import Selector
from training_service.store import Sample, Store
from training_service.store_url import open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    s.migrate()
    yield s
    s.close()


def samples(n: int, label: str = "a") -> list[Sample]:
    return [Sample({"x": i}, label) for i in range(n)]


def test_commits_are_durable(store: Store) -> None:
    if store.url.startswith("sqlite"):
        conn: Any = store._conn()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is fsynced at every COMMIT
    else:  # a COMMIT returns once the WAL is flushed
        assert store._row("SHOW synchronous_commit") == ("on",)  # type: ignore[attr-defined]
        assert store._row("SHOW fsync") == ("on",)  # type: ignore[attr-defined]


def test_a_batch_and_its_key_commit_together_or_not_at_all(store: Store) -> None:
    def explode(ids: list[int], batch: int) -> dict[str, Any]:
        raise RuntimeError("crash before COMMIT")

    with pytest.raises(RuntimeError):
        store.add_batch("s", samples(3), "k", "f", explode)
    assert store.last_sample_id("s") == 0 and store.find_batch("s", "k") is None
    response, replayed = store.add_batch("s", samples(3), "k", "f", lambda ids, b: {"ids": ids})
    first = response["ids"]
    assert len(first) == 3 and first == sorted(first) and not replayed
    assert store.add_batch("s", samples(3), "k", "f", lambda ids, b: {"ids": ids}) == ({"ids": first}, True)
    assert store.records("s", 10**9) == [{"x": 0}, {"x": 1}, {"x": 2}]
    assert store.identified("s", first[1]) == (first[:2], [{"x": 0}, {"x": 1}])


def test_concurrent_retries_with_one_key_store_once(store: Store) -> None:
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


def test_stats_review_and_retention(store: Store) -> None:
    one, _ = store.add_batch("s", samples(4, "a"), None, "f", lambda ids, b: {"ids": ids, "batch": b})
    two, _ = store.add_batch("s", samples(2, "b"), None, "f", lambda ids, b: {"ids": ids, "batch": b})
    store.add_batch("other", samples(3), None, "f", lambda ids, b: {})
    ids = one["ids"] + two["ids"]
    stats = store.sample_stats("s", ids[3])
    assert (stats["total"], stats["new"], stats["batches"], stats["last_id"]) == (6, 2, 2, ids[-1])
    assert stats["labels"] == {"a": 4, "b": 2} and stats["target"] is None
    held = store.change_samples("s", Selector(batch=two["batch"]), "quarantine")
    assert held == {"count": 2, "first_id": ids[4], "last_id": ids[5]}
    assert store.count_since("s", 0) == 4 and store.sample_stats("s", 0)["quarantined"] == 2
    page = store.list_samples("s", Selector(label="b"), True, 0, 10)
    assert [r["id"] for r in page] == ids[4:] and page[0]["quarantined"] and page[0]["record"] == {"x": 0}
    assert [r["id"] for r in store.list_samples("s", Selector(), None, ids[0], 2)] == ids[1:3]
    store.change_samples("s", Selector(first_id=ids[4], last_id=ids[4]), "release")
    assert store.count_since("s", 0) == 5
    gone = store.retain("s", None, 2)  # keep the newest 2
    assert gone == {"count": 4, "first_id": ids[0], "last_id": ids[3]}
    assert store.identified("s", 10**9)[0] == ids[4:5]  # ids[5] is still quarantined
    assert store.change_samples("s", Selector(), "delete")["count"] == 2
    assert store.sample_stats("other", 0)["total"] == 3


def test_one_active_job_per_service(store: Store) -> None:
    job, created = store.create_job("s", "/cs", "on_demand")
    again, created_again = store.create_job("s", "/cs", "new_samples")
    other, created_other = store.create_job("t", "/ct", "on_demand")
    assert created and not created_again and again.id == job.id and created_other
    store.start_job(job.id, 123)
    store.set_through(job.id, 7)
    store.set_progress(job.id, {"stage": "fit"})
    running = store.active_job("s")
    assert running is not None and running.state == "running" and running.pid == 123
    assert running.attempts == 1 and running.progress == {"stage": "fit"}
    store.finish_job(job.id, "succeeded", result={"ok": True}, error=None, timings={"total_s": 1})
    done = store.job(job.id)
    assert done is not None and done.result == {"ok": True} and done.timings == {"total_s": 1}
    last = store.last_training("s")
    assert last is not None and last.samples_through == 7
    assert store.create_job("s", "/cs", "on_demand")[1]
    assert [j.id for j in store.jobs("s")][1] == job.id


def test_requeue_gives_up_after_max_attempts(store: Store) -> None:
    job, _ = store.create_job("s", "/cs", "on_demand")
    for attempt in (1, 2):
        store.start_job(job.id, 1)
        assert store.requeue_job(job.id, "killed", max_attempts=2) == ("queued" if attempt == 1 else "failed")
    failed = store.job(job.id)
    assert failed is not None and failed.state == "failed" and "gave up after 2 attempts" in (failed.error or "")


def test_heartbeats_and_health(store: Store) -> None:
    assert store.heartbeat("scheduler") is None
    store.beat("scheduler")
    assert store.heartbeat("scheduler") is not None
    assert store.check() is None and store.damage() is None and store.free_bytes() > 0


def test_a_lock_is_freed_when_its_holder_is_killed(store: Store, store_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from training_service.store_url import open_store; "
         f"lock = open_store({store_url!r}).try_lock('job-s'); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, env=env(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert store.try_lock("job-s") is None
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
    # PostgreSQL ends the killed holder's session as soon as it sees the socket closed: poll, never sleep.
    lock = wait_until(lambda: store.try_lock("job-s"), 10, "the lock freed")
    assert lock.held()
    lock.release()
    assert not lock.held()


# PostgreSQL only


def test_stores_in_other_schemas_share_no_lock(pg_url: str) -> None:
    with fresh_schema() as other_url:
        mine, other = open_store(pg_url), open_store(other_url)
        held = mine.try_lock("scheduler")
        assert held is not None
        other_lock = other.try_lock("scheduler")
        assert other_lock is not None and mine.try_lock("scheduler") is None
        other_lock.release()
        held.release()


def test_a_lock_whose_session_ends_is_no_longer_held(pg_url: str) -> None:
    store = open_store(pg_url)
    lock = store.try_lock("scheduler")
    assert lock is not None and lock.held()
    pid = lock._conn.info.backend_pid  # type: ignore[attr-defined]
    assert store._row("SELECT pg_terminate_backend(%s)", (pid,)) == (True,)  # type: ignore[attr-defined]
    assert not lock.held()
    again = store.try_lock("scheduler")
    assert again is not None
    again.release()
    store.close()


def test_the_password_is_never_shown() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed; pip install 'mlrm[postgresql]'")
    store = open_store("postgresql://mlrm:hunter2@127.0.0.1:1/db?password=hunter3&schema=s")
    assert "hunter" not in store.url and store.url.startswith("postgresql://mlrm:***@127.0.0.1:1/db?")
    with pytest.raises(StoreError, match="cannot connect to the training store") as refused:
        store.migrate()
    assert "hunter" not in str(refused.value) and "127.0.0.1" in str(refused.value)
    assert "hunter" not in (store.damage() or "") and store.damage()


def test_without_psycopg_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "training_service.postgres_store", raising=False)
    with pytest.raises(StoreError, match=r"pip install 'mlrm\[postgresql\]'") as missing:
        open_store("postgresql://u:pw@db/mlrm")
    assert ":pw@" not in str(missing.value)


def test_a_job_process_whose_lock_session_ends_stops_at_once(pg_url: str) -> None:
    store = open_store(pg_url)
    store.migrate()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import threading; from training_service import jobs; from training_service.store_url import open_store; "
         f"lock = open_store({pg_url!r}).try_lock('job-s'); print('held', flush=True); "
         "jobs._exit_if_lost(lock, threading.Event(), every=0.05)"],
        stdout=subprocess.PIPE, env=env(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        # As a network cut or a server restart would: the server ends the session that holds the job's lock.
        key = store._key("lock:job-s") % 2**64  # type: ignore[attr-defined]  # this lock's, no other test's
        ended = store._rows(  # type: ignore[attr-defined]
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::text::bigint = %s AND objid::text::bigint = %s AND objsubid = 1",
            (key >> 32, key & 0xFFFFFFFF),
        )
        assert ended == [(True,)]
        assert holder.wait(30) == jobs.LOCK_LOST
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
        store.close()


def test_connections_the_server_ended_are_replaced(pg_url: str) -> None:
    store, admin = open_store(pg_url), open_store(pg_url)
    store.migrate()
    store.beat("scheduler")
    store.add_batch("s", samples(2), None, "f", lambda ids, b: {})
    idle = list(store._idle)  # type: ignore[attr-defined]
    assert idle, "a connection is kept for the next call"
    for conn in idle:  # as a server restart would
        admin._rows("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))  # type: ignore[attr-defined]
    assert store.damage() is None and store.heartbeat("scheduler") is not None
    assert store.add_batch("s", samples(1), None, "f", lambda ids, b: {"n": len(ids)}) == ({"n": 1}, False)
    assert store.count_since("s", 0) == 3
    store.close()
    admin.close()


def test_samples_by_arrival_and_the_monitors_report_on_each_backend(store: Store) -> None:
    before = time.time() - 1
    response, _ = store.add_batch("s", samples(3), None, "f", lambda ids, b: {"ids": ids})
    ids = response["ids"]
    assert store.first_id_since("s", before) == ids[0]  # training.data.samples.max_age
    assert store.first_id_since("s", time.time() + 3600) == ids[-1] + 1  # none received since: past the last
    assert store.monitors("s") is None
    store.put_monitors("s", {"drift": {"overall": {"psi": 0.3}}, "performance": None})
    store.put_monitors("s", {"drift": {"overall": {"psi": 0.4}}, "performance": None})  # the last one is kept
    report, received = store.monitors("s")  # type: ignore[misc]
    assert report == {"drift": {"overall": {"psi": 0.4}}, "performance": None} and received >= before
