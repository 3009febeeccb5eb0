"""The one way mlrm opens SQLite, and the one cross-process lock beside a database file.

Every SQLite file mlrm writes (the MQTT and feedback outboxes, the stream
buffer, the training store) is opened by connect(): WAL, so readers never
wait for the writer and a killed process leaves a consistent file;
isolation_level=None, so the only write transactions are the ones
transaction() begins, never one Python's sqlite3 opens behind the caller's
back; and a busy timeout, so a writer waits its turn instead of failing at
once. The synchronous level has no default: durability is each caller's
decision, and each says why it chose its level.

A FileLock is flock(2) on a file beside the database. The kernel drops it
when the holder closes it, exits or is killed, so a crash never leaves a
stale lock that a person has to delete.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


def connect(
    path: Path, *, synchronous: str, busy_timeout: float = 30.0, check_same_thread: bool = True
) -> sqlite3.Connection:
    """A connection to the database at path (created with its folder if absent), in WAL mode."""
    level = synchronous.upper()
    if level not in SYNCHRONOUS:
        raise ValueError(f"synchronous={synchronous!r}: expected one of {', '.join(SYNCHRONOUS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=check_same_thread)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={level}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction, committed when the block ends and rolled back if it raises.

    BEGIN IMMEDIATE takes the write lock up front: two writers that both
    started by reading would otherwise deadlock upgrading to a write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some errors (a full disk); a second ROLLBACK would hide the first error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def lock_path(database: Path) -> Path:
    """Where the lock of a database file lives: beside it, named after it."""
    return database.with_name(database.name + ".lock")


class FileLock:
    """An exclusive flock, held until release() or the end of the process that took it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def held(self) -> bool:
        """Until release(): the kernel never takes an flock from a living holder."""
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # closing the file drops the flock

    def __enter__(self) -> FileLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def try_lock(path: Path, *, wait: float = 0.0) -> FileLock | None:
    """The lock on the file at path, or None if another holder keeps it for longer than wait seconds.

    flock conflicts between two open files even within one process, so a
    second owner is refused whether it is another process or not.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return FileLock(path, fd)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            # flock has no timeout of its own: poll, briefly, until the deadline.
            time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise
