"""mlrm/storage/sqlite.py: WAL at the asked synchronous level, all-or-nothing
write transactions, and a file lock that a second owner is refused and that
dies with its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlrm.storage.sqlite import connect, lock_path, transaction, try_lock
from tests.toolkit.processes import env

LEVELS = {"NORMAL": 1, "FULL": 2, "EXTRA": 3}  # what PRAGMA synchronous reads back


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_connect_makes_the_folder_and_turns_wal_on(tmp_path: Path, level: str) -> None:
    conn = connect(tmp_path / "new" / "db.sqlite", synchronous=level.lower())
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == LEVELS[level]
        assert conn.isolation_level is None
    finally:
        conn.close()


def test_connect_refuses_an_unknown_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous='off'"):
        connect(tmp_path / "db.sqlite", synchronous="off")


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite", synchronous="full")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("half-way")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
    assert not conn.in_transaction
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
    conn.close()


def test_a_second_owner_is_refused_even_in_the_same_process(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "db.sqlite")
    assert path == tmp_path / "db.sqlite.lock"
    held = try_lock(path)
    assert held is not None
    with held:
        assert try_lock(path) is None
        assert try_lock(path, wait=0.05) is None
    again = try_lock(path)
    assert again is not None
    again.release()


def test_the_lock_is_free_again_once_its_holder_is_killed(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "db.sqlite")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from mlrm.storage.sqlite import try_lock; "
         f"lock = try_lock(Path({str(path)!r})); print('held' if lock else 'refused', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, env=env(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert try_lock(path) is None
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
    lock = try_lock(path)
    assert lock is not None
    lock.release()
