"""The store guards its disk and its health, against the real `mlrm training-service`: 507 before
(or when) the disk is full, never 500 and nothing half-written; a damaged SQLite file turns
/v1/health red and ingest is refused; `mlrm samples` reviews samples through the one client."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.toolkit.processes import Process, free_port, mlrm, mlrm_args
from tests.toolkit.training import NAME
from training_service.sqlite_store import SQLiteStore
from training_service.store import Sample

Start = Callable[..., tuple[str, Process]]


def samples_url(base: str) -> str:
    return f"{base}/v1/services/{NAME}/samples"


def test_ingest_answers_507_below_the_free_space_floor(
    root: Path, training_service: Start, cancer_rows: list[dict[str, Any]]
) -> None:
    base, _ = training_service(root, "--min-free-bytes", str(10**18))
    answer = requests.post(samples_url(base), json={"records": cancer_rows[:10]}, timeout=30)
    assert answer.status_code == 507 and answer.headers["Content-Type"] == "application/problem+json"
    assert "--min-free-bytes" in answer.json()["detail"] and "mlrm samples delete" in answer.json()["detail"]
    assert requests.get(f"{samples_url(base)}/stats", timeout=30).json()["total"] == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), unmounted after; skipped where mount is not permitted."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_507_and_nothing_half_written(
    root: Path, small_disk: Path, training_service: Start, cancer_rows: list[dict[str, Any]]
) -> None:
    store = f"sqlite:///{small_disk / 'training.sqlite'}"
    base, _ = training_service(root, "--min-free-bytes", "0", store=store)  # the floor off: SQLite meets the full disk
    statuses, accepted = [], 0
    for i in range(1000):  # small posts, so SQLite itself, not only the size estimate, meets the full disk
        answer = requests.post(samples_url(base), json={"records": cancer_rows[i % 28 * 20 :][:20]}, timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 202:
            accepted += answer.json()["accepted"]
        else:
            break
    assert statuses[-1] == 507, statuses
    assert set(statuses[:-1]) == {202}
    assert "nothing" in answer.json()["detail"] and answer.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{samples_url(base)}/stats", timeout=30).json()["total"] == accepted


def damaged_store(path: Path, rows: list[dict[str, Any]]) -> None:
    """A store of some hundred pages whose middle pages are overwritten, as a failing card leaves it."""
    store = SQLiteStore(path)
    store.migrate()
    for _ in range(4):
        store.add_batch(NAME, [Sample(r, str(r["diagnosis"])) for r in rows], None, "x", lambda ids, b: {})
    store.close()  # the last connection: the WAL is checkpointed into the file
    size, page = path.stat().st_size, 4096
    middle = (size // page // 2) * page
    with path.open("r+b") as file:
        file.seek(middle)
        file.write(b"\xa5" * page * 4)


def test_a_damaged_store_turns_health_red_and_refuses_ingest(
    root: Path, spawn: Callable[..., Process], cancer_rows: list[dict[str, Any]]
) -> None:
    path = root / "training.sqlite"
    damaged_store(path, cancer_rows)
    port = free_port()
    process = spawn(
        mlrm_args("training-service", "--config-root", str(root), "--port", str(port), "--store", str(path)),
        name="training-service",
    )
    base = f"http://127.0.0.1:{port}"
    process.wait_http(f"{base}/v1/health", status=503)
    health = requests.get(f"{base}/v1/health", timeout=30)
    assert health.headers["Content-Type"] == "application/problem+json"
    body = health.json()
    assert body["status"] == "unusable" and body["store"]["ok"] is False and ".recover" in body["store"]["fix"]
    post = requests.post(samples_url(base), json={"records": cancer_rows[:5]}, timeout=30)
    assert post.status_code == 503 and post.json()["type"].endswith("store-unusable")


def test_mlrm_samples_lists_quarantines_and_deletes(
    root: Path, training_service: Start, cancer_rows: list[dict[str, Any]]
) -> None:
    base, _ = training_service(root)
    first = requests.post(samples_url(base), json={"records": cancer_rows[:10]}, timeout=30).json()
    requests.post(samples_url(base), json={"records": cancer_rows[10:20]}, timeout=30)
    listed = mlrm("samples", "list", NAME, "--remote", base, "--batch", str(first["batch"]))
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 10, listed.stderr
    held = mlrm(
        "samples", "quarantine", NAME, "--remote", base, "--ids", f"{first['first_id']}-{first['first_id'] + 2}"
    )
    assert held.returncode == 0 and "quarantined 3 sample(s)" in held.stdout, held.stderr
    only = mlrm("samples", "list", NAME, "--remote", base, "--state", "quarantined")
    assert len(only.stdout.splitlines()) == 3 and "quarantined" in only.stdout
    refused = mlrm("samples", "delete", NAME, "--remote", base)
    assert refused.returncode == 1 and "never read as 'all'" in refused.stderr
    gone = mlrm("samples", "delete", NAME, "--remote", base, "--batch", str(first["batch"]))
    assert gone.returncode == 0 and "deleted 10 sample(s)" in gone.stdout, gone.stderr
    assert requests.get(f"{samples_url(base)}/stats", timeout=30).json()["total"] == 10
