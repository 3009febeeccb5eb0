"""What a service predicted for a request id, and the true values feedback later gave for it.

One SQLite file per config set, shared by every gunicorn worker (SQLite's own
locking; WAL, so readers never wait): a worker that answered a prediction and
the worker that receives its feedback are rarely the same. It is a cache of
figures, not data anyone handed over (the samples themselves go to the
training service through the feedback outbox), so a commit does not wait
for fsync (synchronous=NORMAL: WAL syncs at checkpoints), and it is bounded: at most `keep` predictions and `keep` scores, the
oldest dropped first.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from mlrm.storage.sqlite import connect, transaction

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (id TEXT PRIMARY KEY, version INTEGER, prediction BLOB, at REAL)",
    "CREATE TABLE IF NOT EXISTS scores (id TEXT PRIMARY KEY, version INTEGER, prediction BLOB, truth BLOB, at REAL)",
    "CREATE INDEX IF NOT EXISTS scores_by_time ON scores(version, at)",
)
# Pruning is a DELETE over an index: done every this many writes, not on each.
PRUNE_EVERY = 256


class PerformanceLog:
    """Predictions by id, and scored pairs (prediction, truth) by version and time."""

    def __init__(self, path: Path, keep: int = 100_000) -> None:
        self.path, self.keep = Path(path), keep
        self._ready = False
        self._writes = 0

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: safe across gunicorn's fork and threads, and cheap next to a prediction batch.
        conn = connect(self.path, synchronous="NORMAL")
        if not self._ready:
            for statement in SCHEMA:
                conn.execute(statement)
            self._ready = True
        return conn

    def remember(self, version: int | None, ids: Sequence[str | None], predictions: Sequence[Any]) -> None:
        """Keep what was predicted for each id (an id sent again replaces the earlier prediction; None: not kept)."""
        now = time.time()
        pairs = zip(ids, predictions, strict=True)
        rows = [(i, version, orjson.dumps(p), now) for i, p in pairs if i is not None and p is not None]
        if not rows:
            return
        conn = self._connect()
        try:
            with transaction(conn):
                conn.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?)", rows)
                self._prune(conn, "predictions", len(rows))
        finally:
            conn.close()

    def score(self, truths: dict[str, Any]) -> list[tuple[int | None, Any, Any]]:
        """Pair true values with the predictions of the same ids; (version, prediction, truth) of those matched.

        Each prediction is scored once: a second feedback for the same id replaces the pair's truth.
        """
        if not truths:
            return []
        now = time.time()
        conn = self._connect()
        try:
            with transaction(conn):
                marks = ",".join("?" * len(truths))
                found = conn.execute(
                    f"SELECT id, version, prediction FROM predictions WHERE id IN ({marks})",  # noqa: S608 (only ?s)
                    list(truths),
                ).fetchall()
                rows = [(i, v, p, orjson.dumps(truths[i]), now) for i, v, p in found]
                conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)", rows)
                self._prune(conn, "scores", len(rows))
        finally:
            conn.close()
        return [(v, orjson.loads(p), truths[i]) for i, v, p in found]

    def scored(self, version: int | None, since: float) -> list[tuple[Any, Any]]:
        """(prediction, truth) of the version's predictions scored since a time, oldest first."""
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT prediction, truth FROM scores WHERE version IS ? AND at >= ? ORDER BY at", (version, since)
            ).fetchall()
        finally:
            conn.close()
        return [(orjson.loads(p), orjson.loads(t)) for p, t in rows]

    def _prune(self, conn: sqlite3.Connection, table: str, added: int) -> None:
        self._writes += added
        if self._writes < PRUNE_EVERY:
            return
        self._writes = 0
        conn.execute(
            f"DELETE FROM {table} WHERE rowid <= (SELECT MAX(rowid) FROM {table}) - ?",  # noqa: S608 (a constant)
            (self.keep,),
        )
