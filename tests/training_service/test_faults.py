"""SIGKILL the real training service (its whole process group: gunicorn,
scheduler, job) during ingest and during write-back. Nothing acknowledged is
lost, the config set is at the old or the new version and loads, and a
restart resumes."""

from __future__ import annotations

import fcntl
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
from tests.toolkit.processes import free_port
from tests.toolkit.training import NAME
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
                failures.append(f"{type(exc).__name__}")
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
    deadline = time.monotonic() + 20
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()  # mid-stream: requests are in flight in both gunicorn workers
    time.sleep(0.3)  # the clients keep posting into the void
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=5).json()
        if check(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")


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

    # 1. Hold the version store's writer lock: the job stops inside write-back; kill it there.
    with open(folder / "learned" / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        job = requests.post(f"{url}/v1/services/{NAME}/train", timeout=5).json()["job"]
        wait_job(url, job["id"], lambda j: (j["progress"] or {}).get("stage") == "save")
        time.sleep(0.2)
        process.kill()
    assert assert_loads(folder, {1}) == 1
    assert VersionStore(folder / "learned").versions() == [1]

    # 2. Restart, let the resumed job reach write-back again, and kill it while it writes.
    with open(folder / "learned" / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url, process = training_service(root, port=port)
        wait_job(url, job["id"], lambda j: j["attempts"] == 2 and (j["progress"] or {}).get("stage") == "save")
        time.sleep(0.2)
        fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(0.01)
        process.kill()
    assert_loads(folder, {1, 2})
    assert not list((folder / "learned" / "versions").glob("0003"))

    # 3. Restart: the job resumes and finishes, with exactly one new version, now current.
    url, _ = training_service(root, port=port)
    done = wait_job(url, job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["promoted"] and done["result"]["version"] == 2
    assert done["attempts"] in (2, 3)  # 2 if the second attempt finished before the kill landed
    assert assert_loads(folder, {2}) == 2
    assert VersionStore(folder / "learned").versions() == [1, 2]
