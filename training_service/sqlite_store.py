"""The embedded store: SQLite in WAL mode with synchronous=FULL (see store.py
for the durability argument). One connection per process and thread; both the
connection and the cross-process locks come from mlrm/storage/sqlite.py."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from mlrm.errors import StoreError
from mlrm.storage.sqlite import SYNCHRONOUS, FileLock, connect, transaction, try_lock
from training_service import sqlite_review
from training_service.selector import Selector
from training_service.store import FINAL, Job, Sample, iso

_ACTIVE_SQL = "state IN ('queued', 'running')"
# What an operator does when the file is damaged (GET /v1/health's store.fix).
REPAIR = (
    "Stop the training service, keep a copy of the file, recover it (sqlite3 training.sqlite '.recover' | "
    "sqlite3 recovered.sqlite) and start with --store sqlite:///recovered.sqlite"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    batch INTEGER NOT NULL,
    received_at REAL NOT NULL,
    label TEXT,
    value REAL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_service ON samples(service);
CREATE INDEX IF NOT EXISTS samples_by_label ON samples(service, label);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    idempotency_key TEXT,
    fingerprint TEXT NOT NULL,
    received_at REAL NOT NULL,
    accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    response BLOB NOT NULL,
    UNIQUE (service, idempotency_key)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    config_path TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    samples_through INTEGER,
    progress BLOB,
    timings BLOB,
    result BLOB,
    error TEXT
);
-- One job at a time per service, enforced by the database itself.
CREATE UNIQUE INDEX IF NOT EXISTS one_active_job ON jobs(service) WHERE state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS monitors (service TEXT PRIMARY KEY, report BLOB NOT NULL, received_at REAL NOT NULL);
"""

_JOB_COLUMNS = (
    "id, service, config_path, state, trigger, created_at, started_at, finished_at, attempts, pid, "
    "samples_through, progress, timings, result, error"
)


def _json(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


def _load(blob: bytes | str | None) -> Any:
    return None if blob is None else orjson.loads(blob)


def _job(row: tuple[Any, ...]) -> Job:
    values = list(row)
    for i in (11, 12, 13):
        values[i] = _load(values[i])
    return Job(*values)


class SQLiteStore:
    """The embedded store: one SQLite file in WAL mode, one connection per process and thread."""

    repair = REPAIR

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path).resolve()
        self.synchronous = synchronous.upper()
        if self.synchronous not in SYNCHRONOUS:
            raise StoreError(f"synchronous={synchronous!r}: expected full, normal or extra")
        self.url = f"sqlite:///{self.path}" + ("" if self.synchronous == "FULL" else f"?synchronous={synchronous}")
        self._local = threading.local()

    @property
    def identity(self) -> str:
        return self.url

    # Connections must not cross fork(): gunicorn forks workers from a master
    # that built the app, so each process (and thread) opens its own.
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            # FULL unless the store URL asks otherwise: a 202 promises the samples are on disk.
            conn = connect(self.path, synchronous=self.synchronous, check_same_thread=False)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection."""
        return transaction(self._conn())

    def migrate(self) -> None:
        try:
            with self._write() as conn:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                sqlite_review.add_columns(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {self.path} as the training store: {exc}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    # Samples

    def find_batch(self, service: str, key: str) -> tuple[str, dict[str, Any]] | None:
        row = (
            self._conn()
            .execute(
                "SELECT fingerprint, response FROM batches WHERE service = ? AND idempotency_key = ?", (service, key)
            )
            .fetchone()
        )
        return None if row is None else (row[0], _load(row[1]))

    def add_batch(
        self,
        service: str,
        samples: list[Sample],
        key: str | None,
        fingerprint: str,
        respond: Callable[[list[int], int], dict[str, Any]],
    ) -> tuple[dict[str, Any], bool]:
        now = time.time()
        with sqlite_review.refusing_full(self.path), self._write() as conn:
            if key is not None:
                # Checked again under the write lock: a concurrent retry may have committed meanwhile.
                row = conn.execute(
                    "SELECT response FROM batches WHERE service = ? AND idempotency_key = ?", (service, key)
                ).fetchone()
                if row is not None:
                    return _load(row[0]), True
            cur = conn.execute(
                "INSERT INTO batches (service, idempotency_key, fingerprint, received_at, accepted, rejected, response) "
                "VALUES (?, ?, ?, ?, 0, 0, x'')",
                (service, key, fingerprint, now),
            )
            batch = int(cur.lastrowid or 0)
            before = self._sequence(conn)
            conn.executemany(
                "INSERT INTO samples (service, batch, received_at, label, value, record) VALUES (?, ?, ?, ?, ?, ?)",
                [(service, batch, now, s.label, s.value, _json(s.record)) for s in samples],
            )
            # AUTOINCREMENT under the write lock hands out consecutive ids.
            ids = list(range(before + 1, self._sequence(conn) + 1))
            response = respond(ids, batch)
            conn.execute(
                "UPDATE batches SET accepted = ?, rejected = ?, response = ? WHERE id = ?",
                (len(ids), int(response.get("rejected", 0)), _json(response), batch),
            )
        return response, False

    @staticmethod
    def _sequence(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'samples'").fetchone()
        return int(row[0]) if row else 0

    def last_sample_id(self, service: str) -> int:
        row = self._conn().execute("SELECT MAX(id) FROM samples WHERE service = ?", (service,)).fetchone()
        return int(row[0] or 0)

    def first_id_since(self, service: str, since: float) -> int:
        row = (
            self._conn()
            .execute("SELECT MIN(id) FROM samples WHERE service = ? AND received_at >= ?", (service, since))
            .fetchone()
        )
        return int(row[0]) if row and row[0] is not None else self.last_sample_id(service) + 1

    def put_monitors(self, service: str, report: dict[str, Any]) -> None:
        self._update(
            "INSERT INTO monitors (service, report, received_at) VALUES (?, ?, ?) "
            "ON CONFLICT (service) DO UPDATE SET report = excluded.report, received_at = excluded.received_at",
            (service, _json(report), time.time()),
        )

    def monitors(self, service: str) -> tuple[dict[str, Any], float] | None:
        row = self._conn().execute("SELECT report, received_at FROM monitors WHERE service = ?", (service,)).fetchone()
        return None if row is None else (_load(row[0]), float(row[1]))

    def count_since(self, service: str, after_id: int) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(*) FROM samples WHERE service = ? AND id > ? AND quarantined = 0", (service, after_id)
            )
            .fetchone()
        )
        return int(row[0])

    def records(self, service: str, through: int) -> list[dict[str, Any]]:
        return self.identified(service, through)[1]

    def identified(self, service: str, through: int) -> tuple[list[int], list[dict[str, Any]]]:
        rows = (
            self._conn()
            .execute(
                "SELECT id, record FROM samples WHERE service = ? AND id <= ? AND quarantined = 0 ORDER BY id",
                (service, through),
            )
            .fetchall()
        )
        return [int(r[0]) for r in rows], [orjson.loads(r[1]) for r in rows]

    def sample_stats(self, service: str, after_id: int) -> dict[str, Any]:
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for every figure
        try:
            total, first, last, low, high, mean = conn.execute(
                "SELECT COUNT(*), MIN(received_at), MAX(received_at), MIN(value), MAX(value), AVG(value) "
                "FROM samples WHERE service = ?",
                (service,),
            ).fetchone()
            labels = dict(
                conn.execute(
                    "SELECT label, COUNT(*) FROM samples WHERE service = ? AND label IS NOT NULL "
                    "GROUP BY label ORDER BY label",
                    (service,),
                ).fetchall()
            )
            new = conn.execute(
                "SELECT COUNT(*) FROM samples WHERE service = ? AND id > ?", (service, after_id)
            ).fetchone()[0]
            batches = conn.execute("SELECT COUNT(*) FROM batches WHERE service = ?", (service,)).fetchone()[0]
            last_id = conn.execute("SELECT MAX(id) FROM samples WHERE service = ?", (service,)).fetchone()[0]
            held = conn.execute(
                "SELECT COUNT(*) FROM samples WHERE service = ? AND quarantined = 1", (service,)
            ).fetchone()[0]
        finally:
            conn.execute("COMMIT")
        return {
            "total": int(total),
            "new": int(new),
            "batches": int(batches),
            "quarantined": int(held),
            "last_id": int(last_id or 0),
            "labels": labels,
            "target": None if low is None else {"min": low, "max": high, "mean": mean},
            "first_received_at": iso(first),
            "last_received_at": iso(last),
        }

    # Review (sqlite_review.py)

    def list_samples(
        self, service: str, selector: Selector, quarantined: bool | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        return sqlite_review.listing(self._conn(), service, selector, quarantined, after, limit)

    def change_samples(self, service: str, selector: Selector, action: str) -> dict[str, Any]:
        with self._write() as conn:
            return sqlite_review.change(conn, service, selector, action)

    def retain(self, service: str, max_age: float | None, max_count: int | None) -> dict[str, Any]:
        with self._write() as conn:
            return sqlite_review.retain(conn, service, max_age, max_count)

    def check(self) -> str | None:
        """Run SQLite's quick_check; a damaged file is remembered (for every process's health) until it passes."""
        return sqlite_review.check(self._conn(), self._locks() / "damaged")

    def damage(self) -> str | None:
        return sqlite_review.damage(self._conn, self._locks() / "damaged")

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path.parent).free

    # Jobs

    def create_job(self, service: str, config_path: str, trigger: str) -> tuple[Job, bool]:
        with self._write() as conn:
            active = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE service = ? AND {_ACTIVE_SQL}", (service,)
            ).fetchone()
            if active is not None:
                return _job(active), False
            cur = conn.execute(
                "INSERT INTO jobs (service, config_path, state, trigger, created_at) VALUES (?, ?, 'queued', ?, ?)",
                (service, config_path, trigger, time.time()),
            )
            row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _job(row), True

    def job(self, job_id: int) -> Job | None:
        row = self._conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def jobs(self, service: str, limit: int = 20) -> list[Job]:
        rows = self._conn().execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE service = ? ORDER BY id DESC LIMIT ?", (service, limit)
        )
        return [_job(r) for r in rows]

    def active_job(self, service: str) -> Job | None:
        row = (
            self._conn()
            .execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE service = ? AND {_ACTIVE_SQL}", (service,))
            .fetchone()
        )
        return None if row is None else _job(row)

    def last_training(self, service: str) -> Job | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE service = ? AND samples_through IS NOT NULL "
                "ORDER BY id DESC LIMIT 1",
                (service,),
            )
            .fetchone()
        )
        return None if row is None else _job(row)

    def _update(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._write() as conn:
            conn.execute(sql, params)

    def start_job(self, job_id: int, pid: int) -> None:
        self._update(
            "UPDATE jobs SET state = 'running', started_at = ?, pid = ?, attempts = attempts + 1, progress = NULL "
            "WHERE id = ?",
            (time.time(), pid, job_id),
        )

    def set_through(self, job_id: int, through: int) -> None:
        self._update("UPDATE jobs SET samples_through = ? WHERE id = ?", (through, job_id))

    def set_progress(self, job_id: int, progress: dict[str, Any]) -> None:
        self._update("UPDATE jobs SET progress = ? WHERE id = ?", (_json(progress), job_id))

    def finish_job(
        self, job_id: int, state: str, *, result: dict[str, Any] | None, error: str | None, timings: dict[str, Any]
    ) -> None:
        assert state in FINAL
        self._update(
            "UPDATE jobs SET state = ?, finished_at = ?, result = ?, error = ?, timings = ? WHERE id = ?",
            (state, time.time(), None if result is None else _json(result), error, _json(timings), job_id),
        )

    def requeue_job(self, job_id: int, reason: str, max_attempts: int) -> str:
        with self._write() as conn:
            row = conn.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0] != "running":
                return row[0] if row else "missing"
            if row[1] >= max_attempts:
                conn.execute(
                    "UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ?",
                    (time.time(), f"{reason}; gave up after {row[1]} attempts", job_id),
                )
                return "failed"
            conn.execute(
                "UPDATE jobs SET state = 'queued', pid = NULL, error = ? WHERE id = ?", (f"{reason}; resuming", job_id)
            )
            return "queued"

    # Liveness and locks

    # Heartbeats are file times, not rows: a commit (fsync) every tick would wear an SD card out.
    def beat(self, name: str) -> None:
        (self._locks() / f"{name}.beat").touch()

    def heartbeat(self, name: str) -> float | None:
        try:
            return (self._locks() / f"{name}.beat").stat().st_mtime
        except FileNotFoundError:
            return None

    def _locks(self) -> Path:
        folder = self.path.with_name(self.path.name + ".locks")
        folder.mkdir(exist_ok=True)
        return folder

    def try_lock(self, name: str) -> FileLock | None:
        return try_lock(self._locks() / f"{name}.lock")
