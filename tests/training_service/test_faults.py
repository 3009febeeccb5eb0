"""SIGKILL the real training service (its whole process group: gunicorn,
scheduler, job) during ingest, and in write-back before and after the version
is written. Nothing acknowledged is lost, the config set is at the old or the
new version and loads, and a restart resumes."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.config import load_config_set
from mlrm.core.service import Service
from mlrm.storage.versions import VersionStore
from tests.toolkit.processes import flock_waiters, free_port
from tests.toolkit.training import NAME
from tests.toolkit.waiting import wait_until
from training_service.store_url import open_store


def poster(url: str, rows: list[dict[str, Any]], acked: list[tuple[str, dict[str, Any], list[Any]]],
           stop: threading.Event, failures: list[str], tag: int) -> None:  # fmt: skip
    """Post batches of 5 until stopped, keeping every acknowledged (key, response, records)."""
    with requests.Session() as session:
        for i in range(10_000):
            if stop.is_set():
                return
            key = f"client{tag}-{i}-{uuid.uuid4().hex[:6]}"
            batch = rows[(5 * i) % 500 : (5 * i) % 500 + 5]
            try:
                answer = session.post(f"{url}/v1/services/{NAME}/samples", json={"records": batch},
                                      headers={"Idempotency-Key": key}, timeout=5)  # fmt: skip
            except requests.RequestException as exc:
                failures.append(f"client{tag}: {type(exc).__name__}")
                time.sleep(0.02)
                continue
            if answer.status_code == 202:
                acked.append((key, answer.json(), batch))


@pytest.mark.slow
def test_sigkill_during_ingest_loses_no_acknowledged_sample(
    root: Path, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]]
) -> None:
    port = free_port()
    url, process = training_service(root, port=port)
    acked: list[Any] = []
    failures: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=poster, args=(url, cancer_rows, acked, stop, failures, n)) for n in range(2)]
    for c in clients:
        c.start()
    wait_until(lambda: len(acked) >= 40, 20, "40 batches acknowledged")
    process.kill()  # mid-stream: requests are in flight in both gunicorn workers
    # Both clients go on posting into the void until each has seen the service gone.
    wait_until(lambda: {f.split(":")[0] for f in failures} == {"client0", "client1"}, 20, "both clients failing")
    stop.set()
    for c in clients:
        c.join(10)
    assert len(acked) >= 40 and failures, "the kill did not hit a busy service"

    store = open_store(f"sqlite:///{root / 'training.sqlite'}")
    stored = store.records(NAME, 10**9)
    for key, response, batch in acked:
        ids = [row["id"] for row in response["rows"]]
        assert [stored[i - 1] for i in ids] == batch  # every acknowledged sample, intact
        assert store.find_batch(NAME, key) is not None
    assert len(stored) >= 5 * len(acked)

    # Restart on the same store: it serves the same data and takes new samples.
    url, _ = training_service(root, port=port)
    assert requests.get(f"{url}/v1/services/{NAME}/samples/stats", timeout=5).json()["total"] == len(stored)
    key, response, batch = acked[-1]  # a client retrying its last post counts once
    again = requests.post(f"{url}/v1/services/{NAME}/samples", json={"records": batch},
                          headers={"Idempotency-Key": key}, timeout=5)  # fmt: skip
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == response
    assert requests.get(f"{url}/v1/services/{NAME}/samples/stats", timeout=5).json()["total"] == len(stored)


def wait_job(url: str, job_id: int, check: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
    def job() -> dict[str, Any] | None:
        answer: dict[str, Any] = requests.get(f"{url}/v1/jobs/{job_id}", timeout=5).json()
        return answer if check(answer) else None

    return wait_until(job, timeout, f"job {job_id} there", interval=0.05)


def assert_loads(folder: Path, versions: set[int]) -> int:
    """The config set is at one of `versions`, and an ML service loads it."""
    service = Service(load_config_set(folder))
    assert service.load_error is None and service.version in versions
    assert VersionStore(folder / "learned").current() == service.version
    return int(service.version or 0)


@pytest.mark.slow
def test_sigkill_during_write_back_leaves_old_or_new_version_and_restart_resumes(
    root: Path, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]]
) -> None:
    folder = root / NAME
    port = free_port()
    url, process = training_service(root, port=port)
    answer = requests.post(f"{url}/v1/services/{NAME}/samples", json={"records": cancer_rows[:300]}, timeout=10)
    assert answer.status_code == 202

    # 1. Hold the version store's writer lock: the job blocks on it inside write-back; kill it there.
    lock_file = folder / "learned" / ".lock"
    with open(lock_file, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        job = requests.post(f"{url}/v1/services/{NAME}/train", timeout=5).json()["job"]
        wait_job(url, job["id"], lambda j: (j["progress"] or {}).get("stage") == "save")
        wait_until(lambda: flock_waiters(lock_file), 30, "the job waiting for the writer lock")
        process.kill()
    assert assert_loads(folder, {1}) == 1
    assert VersionStore(folder / "learned").versions() == [1]

    # 2. Restart and let the resumed job write its version, then kill it before it can record
    # that in the store: a write transaction held here keeps its next store write waiting.
    store = sqlite3.connect(root / "training.sqlite", timeout=30, isolation_level=None)
    with open(lock_file, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url, process = training_service(root, port=port)
        wait_job(url, job["id"], lambda j: j["attempts"] == 2 and (j["progress"] or {}).get("stage") == "save")
        wait_until(lambda: flock_waiters(lock_file), 30, "the resumed job waiting for the writer lock")
        store.execute("BEGIN IMMEDIATE")
        fcntl.flock(lock, fcntl.LOCK_UN)
        wait_until(lambda: VersionStore(folder / "learned").current() == 2, 30, "version 2 written and current")
        process.kill()
    store.execute("ROLLBACK")
    store.close()
    assert assert_loads(folder, {2}) == 2

    # 3. Restart: the job resumes, finds its version already written, and finishes without another.
    url, _ = training_service(root, port=port)
    done = wait_job(url, job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["promoted"] and done["result"]["version"] == 2 and done["result"]["resumed"]
    assert done["attempts"] == 3
    assert assert_loads(folder, {2}) == 2
    assert VersionStore(folder / "learned").versions() == [1, 2]
