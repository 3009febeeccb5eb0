"""Two real training services on one PostgreSQL store, as on two hosts behind a load
balancer: samples posted to either are one set, exactly one scheduler leads, and when
the leader is SIGKILLed (its whole process group, mid-job) the other takes over and the
job completes exactly once."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.storage.versions import VersionStore
from tests.toolkit.processes import Process, descendants, flock_waiters
from tests.toolkit.training import NAME
from tests.toolkit.waiting import wait_until

Start = Callable[..., tuple[str, Process]]


def job_of(url: str, job_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{url}/v1/jobs/{job_id}", timeout=5).json()
    return answer


@pytest.mark.slow
def test_a_killed_leader_is_replaced_and_its_job_completes_once(
    root: Path, pg_url: str, training_service: Start, cancer_rows: list[dict[str, Any]]
) -> None:
    first_url, first = training_service(root, store=pg_url)
    wait_until(lambda: "scheduler ready" in first.output(), 30, "the first instance's scheduler leading")
    second_url, second = training_service(root, store=pg_url)
    wait_until(lambda: "standing by" in second.output(), 30, "the second instance's scheduler standing by")

    # Samples through either instance land in one store; a retry through the other counts once.
    posted = []
    for i, url in enumerate([first_url, second_url, first_url]):
        answer = requests.post(f"{url}/v1/services/{NAME}/samples", json={"records": cancer_rows[i * 100 : i * 100 + 100]},
                               headers={"Idempotency-Key": f"batch-{i}"}, timeout=30)  # fmt: skip
        assert answer.status_code == 202, answer.text
        posted.append(answer.json())
    retry = requests.post(f"{second_url}/v1/services/{NAME}/samples", json={"records": cancer_rows[200:300]},
                          headers={"Idempotency-Key": "batch-2"}, timeout=30)  # fmt: skip
    assert retry.headers.get("Idempotent-Replayed") == "true" and retry.json() == posted[2]
    assert requests.get(f"{second_url}/v1/services/{NAME}/samples/stats", timeout=30).json()["total"] == 300

    # The job blocks in write-back (we hold the version store's writer lock); kill the leading instance there.
    lock_file = root / NAME / "learned" / ".lock"
    with open(lock_file, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        job = requests.post(f"{second_url}/v1/services/{NAME}/train", timeout=5).json()["job"]
        wait_until(lambda: flock_waiters(lock_file), 30, "the job waiting for the writer lock")
        assert set(flock_waiters(lock_file)) <= descendants(first.pid)  # run by the leader's scheduler
        first.kill()
        # The other scheduler takes the lead, finds the job's lock free and resumes it: one process, its own.
        wait_until(lambda: "scheduler ready" in second.output(), 30, "the second scheduler taking over")
        wait_until(lambda: job_of(second_url, job["id"])["attempts"] == 2 and flock_waiters(lock_file), 30,
                   "the job resumed and waiting for the writer lock")  # fmt: skip
        waiting = flock_waiters(lock_file)
        assert len(waiting) == 1 and set(waiting) <= descendants(second.pid)
        fcntl.flock(lock, fcntl.LOCK_UN)
    done = wait_until(lambda: (j := job_of(second_url, job["id"]))["state"] in ("succeeded", "failed") and j, 60,
                      "the resumed job finished")  # fmt: skip
    assert done["state"] == "succeeded" and done["attempts"] == 2, done["error"]
    assert done["result"]["version"] == 2 and done["samples_through"] == posted[2]["last_id"]
    assert f"job {job['id']} for {NAME} was interrupted; now queued" in second.output()
    versions = VersionStore(root / NAME / "learned")
    assert versions.versions() == [1, 2] and versions.current() == 2
    assert [j["id"] for j in requests.get(f"{second_url}/v1/services/{NAME}/jobs", timeout=5).json()["jobs"]] == [
        job["id"]
    ]
    health = requests.get(f"{second_url}/v1/health", timeout=5).json()
    assert health["scheduler"]["alive"] and health["status"] == "ok"
    assert requests.get(f"{second_url}/v1/services/{NAME}/samples/stats", timeout=30).json()["total"] == 300
