"""Single records buffered per stream until a window is full, in SQLite.

Why a file and not a dict: `mlrm serve --workers N` forks N processes, and
consecutive records of one device may land in different ones; a shared
SQLite file (WAL, one write transaction per request) gives every worker the
same windows, and a record answered with "pending" survives a crash or
restart of the worker that took it. A request's records are buffered all
together or not at all.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlrm.errors import FieldError, RequestError
from mlrm.storage.sqlite import connect, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY, seen REAL NOT NULL, since INTEGER NOT NULL, answered INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, ord REAL NOT NULL, row BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_in_order ON records (stream, ord, id);
"""


@dataclass(frozen=True)
class Incoming:
    """One validated record: its stream, time (0 in arrival order), encoded row, and where it was sent."""

    stream: str
    time: float
    row: np.ndarray
    pointer: str
    time_pointer: str = ""


@dataclass(frozen=True)
class Pushed:
    """What buffering one record gave: a full window to answer, or how many records are still needed."""

    stream: str
    window: np.ndarray | None
    needed: int


class StreamBuffer:
    """The last `window` records of every stream, and when each stream is due an answer."""

    def __init__(
        self,
        path: Path,
        *,
        window: int,
        step: int,
        width: int,
        ordered: bool,
        max_streams: int,
        idle_seconds: float,
        layout: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.window, self.step, self.width, self.ordered = window, step, width, ordered
        self.max_streams, self.idle = max_streams, idle_seconds
        self.layout = layout
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross fork(): gunicorn builds the app before forking workers.
        if self._db is not None and self._pid == os.getpid():
            return self._db
        # NORMAL, not FULL: a commit on every predict request, and a fsync each would cost more than
        # the request. WAL with NORMAL still survives a crash or kill of the worker; a power cut may
        # lose the last buffered records, and their windows then fill from the records that follow.
        # A predict request waits at most 10 s for another worker's write, not the stores' 30 s.
        # check_same_thread=False: the threads of one worker share it, serialised by self._lock.
        db = connect(self.path, synchronous="NORMAL", busy_timeout=10, check_same_thread=False)
        try:
            with transaction(db):
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                stored = db.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
                if stored is None or stored[0] != self.layout:
                    # Buffered rows of another window layout cannot join these windows.
                    db.execute("DELETE FROM records")
                    db.execute("DELETE FROM streams")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('layout', ?)", (self.layout,))
        except BaseException:
            db.close()
            raise
        self._db, self._pid = db, os.getpid()
        return db

    def push(self, records: list[Incoming]) -> list[Pushed]:
        """Buffer records in order, all or none; one result per record."""
        with self._lock:
            db = self._connect()
            with transaction(db):
                now = self.clock()
                return [self._push(db, r, now) for r in records]

    def _push(self, db: sqlite3.Connection, r: Incoming, now: float) -> Pushed:
        state = db.execute("SELECT seen, since, answered FROM streams WHERE stream = ?", (r.stream,)).fetchone()
        if state is not None and now - state[0] > self.idle:
            db.execute("DELETE FROM records WHERE stream = ?", (r.stream,))  # silent too long: start afresh
            state = (now, 0, 0)
        if state is None:
            self._make_room(db, r, now)
            db.execute("INSERT INTO streams VALUES (?, ?, 0, 0)", (r.stream, now))
            state = (now, 0, 0)
        _seen, since, answered = state
        count = db.execute("SELECT count(*) FROM records WHERE stream = ?", (r.stream,)).fetchone()[0]
        if self.ordered and count >= self.window:
            oldest = db.execute("SELECT min(ord) FROM records WHERE stream = ?", (r.stream,)).fetchone()[0]
            if r.time < oldest:
                raise RequestError("Invalid input", 422, errors=[FieldError(
                    r.time_pointer, f"this record is older than all {count} records buffered for stream "
                                    f"'{r.stream}': it would never be part of a window. Send records in time order.")])  # fmt: skip
        db.execute("INSERT INTO records (stream, ord, row) VALUES (?, ?, ?)",
                   (r.stream, r.time, np.asarray(r.row, dtype="<f8").tobytes()))  # fmt: skip
        count += 1
        if count > self.window:
            db.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE stream = ? ORDER BY ord, id LIMIT ?)",
                (r.stream, count - self.window),
            )
            count = self.window
        since += 1
        due = count == self.window and (not answered or since >= self.step)
        if due:
            since, answered = 0, 1
        db.execute("UPDATE streams SET seen = ?, since = ?, answered = ? WHERE stream = ?",
                   (now, since, answered, r.stream))  # fmt: skip
        if due:
            rows = db.execute("SELECT row FROM records WHERE stream = ? ORDER BY ord, id", (r.stream,)).fetchall()
            matrix = np.frombuffer(b"".join(row[0] for row in rows), dtype="<f8").reshape(self.window, self.width)
            return Pushed(r.stream, matrix.astype(np.float64), 0)
        return Pushed(r.stream, None, self.window - count if count < self.window else self.step - since)

    def _make_room(self, db: sqlite3.Connection, r: Incoming, now: float) -> None:
        if db.execute("SELECT count(*) FROM streams").fetchone()[0] < self.max_streams:
            return
        cutoff = now - self.idle
        db.execute("DELETE FROM records WHERE stream IN (SELECT stream FROM streams WHERE seen < ?)", (cutoff,))
        db.execute("DELETE FROM streams WHERE seen < ?", (cutoff,))
        if db.execute("SELECT count(*) FROM streams").fetchone()[0] >= self.max_streams:
            raise RequestError(
                "Too many streams", 429, kind="too-many-streams",
                errors=[FieldError(r.pointer, f"the buffer already holds {self.max_streams} streams active in the "
                                              f"last {self.idle:g} s; wait, or raise sequence.buffer.max_streams")],
            )  # fmt: skip

    def streams(self) -> dict[str, int]:
        """Buffered records per stream."""
        with self._lock:
            rows = self._connect().execute("SELECT stream, count(*) FROM records GROUP BY stream").fetchall()
        return {s: n for s, n in rows}

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None
