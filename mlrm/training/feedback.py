"""Feedback: a consumer sends the true label of something it had predicted,
and the ML service passes it on to the training service as a new sample.

Transport-free: the REST layer calls Feedback.submit(). Each accepted post
becomes one entry in a durable local outbox (SQLite, WAL, synchronous=FULL)
before it is acknowledged, so nothing is lost while the training service is
down. Entries are delivered oldest first, one deliverer at a time (a file
lock across gunicorn workers), each with its own Idempotency-Key, so the
training service stores every entry exactly once and in order however often
a delivery is retried. An entry the training service can never accept (413
or 422: the config sets disagree) is set aside as dead instead of blocking
the rest; it stays in the outbox for a person to look at.

Delivery is tried at once on each post, and again every
feedback.retry_interval seconds by a small thread per worker that does only
SQLite and HTTP (never scikit-learn, so it is safe beside sync workers). It
posts through TrainingServiceClient, the client `mlrm train --remote` uses,
so both name a failure the same way.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mlrm.config.service_config import ServiceConfig
from mlrm.errors import FieldError, RemoteError, RequestError
from mlrm.storage.sqlite import connect, lock_path, try_lock
from mlrm.training.remote import TRAINING_SERVICE_ENV, Problem, TrainingServiceClient
from mlrm.training.trainer import dataset

log = logging.getLogger("mlrm.training.feedback")

POINTER = "/records"
# Answers that no retry can change: keep the entry aside instead of blocking the queue.
PERMANENT = (413, 422)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)
"""


@dataclass
class Entry:
    """One post waiting for the training service."""

    seq: int
    key: str
    body: bytes
    attempts: int


class FeedbackOutbox:
    """A durable FIFO of feedback posts in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: cheap, and safe across fork() and threads.
        # FULL: the 202 tells the consumer its feedback is kept, and it will not send it again.
        conn = connect(self.path, synchronous="FULL")
        if not self._ready:
            conn.execute(SCHEMA)
            self._ready = True
        return conn

    def put(self, body: bytes) -> tuple[int, str]:
        """Store a post durably; (its sequence number, its Idempotency-Key)."""
        key = f"feedback-{uuid.uuid4().hex}"
        conn = self._connect()
        try:
            cur = conn.execute("INSERT INTO outbox (key, body, created_at) VALUES (?, ?, ?)", (key, body, time.time()))
            return int(cur.lastrowid or 0), key
        finally:
            conn.close()

    def head(self) -> Entry | None:
        """The oldest pending entry."""
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT seq, key, body, attempts FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        return None if row is None else Entry(int(row[0]), row[1], bytes(row[2]), int(row[3]))

    def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        conn = self._connect()
        try:
            conn.execute(sql, params)
        finally:
            conn.close()

    def holds(self, seq: int) -> bool:
        """Whether the entry is still in the outbox (pending or set aside)."""
        conn = self._connect()
        try:
            return conn.execute("SELECT 1 FROM outbox WHERE seq = ?", (seq,)).fetchone() is not None
        finally:
            conn.close()

    def delivered(self, seq: int) -> None:
        self._run("DELETE FROM outbox WHERE seq = ?", (seq,))

    def failed(self, seq: int, error: str, *, dead: bool) -> None:
        self._run(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, state = ? WHERE seq = ?",
            (error[:2000], "dead" if dead else "pending", seq),
        )

    def counts(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"pending": 0, "dead": 0, "last_error": None}
        conn = self._connect()
        try:
            counts = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
            row = conn.execute(
                "SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        return {
            "pending": counts.get("pending", 0),
            "dead": counts.get("dead", 0),
            "last_error": row[0] if row else None,
        }


def _described(exc: RemoteError) -> str:
    """What went wrong, with the rows the training service refused, for the person who reads last_error."""
    errors = exc.body.get("errors") if isinstance(exc, Problem) else None
    return f"{exc} {orjson.dumps(errors[:5]).decode()}" if errors else str(exc)


class Feedback:
    """Validates feedback, keeps it in the outbox and forwards it to the training service."""

    def __init__(
        self, config: ServiceConfig, url: str | None, outbox: Path, *, timeout: float = 2.0, retry_interval: float = 5.0
    ) -> None:
        self.config = config
        self.url = url.rstrip("/") if url else None
        self.outbox = FeedbackOutbox(outbox)
        self.timeout, self.retry_interval = timeout, retry_interval
        self._thread_pid: int | None = None
        self._stop = threading.Event()
        # What the service's monitors say (drift, performance), reported to the training service for its
        # triggers (training.triggers.drift, .performance) with each delivery and every retry_interval.
        self.monitors: Callable[[], dict[str, Any]] | None = None
        self._reported = 0.0

    @classmethod
    def from_config(cls, config: ServiceConfig) -> Feedback:
        """From the feedback section of service.yaml; MLRM_TRAINING_SERVICE overrides its URL."""
        section = config.section("feedback")
        url = os.environ.get(TRAINING_SERVICE_ENV) or section.get("training_service")
        return cls(
            config,
            url,
            config.path / str(section.get("outbox") or "feedback-outbox.sqlite"),
            timeout=float(section.get("timeout", 2.0)),
            retry_interval=float(section.get("retry_interval", 5.0)),
        )

    def submit(self, body: Any) -> dict[str, Any]:
        """Validate a {"records": [...]} post, store it, and try to deliver the outbox now."""
        if not self.url:
            raise RequestError(
                "Feedback not configured", 503, kind="feedback-not-configured",
                detail=f"set feedback.training_service in {self.config.path}/service.yaml "
                f"(or the environment variable {TRAINING_SERVICE_ENV}) to the training service's URL, e.g. http://127.0.0.1:8100",
            )  # fmt: skip
        records = self._validate(body)
        seq, key = self.outbox.put(orjson.dumps({"records": records}))
        # Bounded: a long backlog after an outage is the retry thread's work, not this request's.
        self.deliver(budget=2 * self.timeout)
        self.report_monitors(every=1.0)
        # Whoever delivered it (this request or a deliverer in another worker), it left the outbox.
        delivered = not self.outbox.holds(seq)
        return {"accepted": len(records), "id": key, "delivered": delivered, **self.outbox.counts()}

    def _validate(self, body: Any) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError(
                "Invalid request", 422, errors=[FieldError("", 'expected {"records": [{...features, target}]}')]
            )
        # ids: which predictions the records score (the REST layer reads them); they are not samples.
        unknown = sorted(k for k in body if k not in ("records", "ids"))
        if unknown:
            raise RequestError(
                "Invalid request", 422, errors=[FieldError(f"/{unknown[0]}", "unknown key; only 'records' and 'ids'")]
            )
        records = body["records"]
        if not records:
            raise RequestError("Invalid request", 422, errors=[FieldError(POINTER, "expected at least one record")])
        limit = int(self.config.section("limits")["max_instances"])
        if len(records) > limit:
            raise RequestError(
                "Too many records", 413, kind="too-many-records",
                detail=f"{len(records)} records in one post; the limit is {limit} (limits.max_instances)",
            )  # fmt: skip
        # The same validation the training service applies: it will accept every one of these.
        data = dataset(self.config, records, pointer=POINTER)
        if data.rejected:
            raise RequestError("Invalid feedback", 422, errors=data.rejected[:20])
        return records

    def deliver(self, budget: float | None = None) -> list[int]:
        """Forward pending entries oldest first until one fails (or budget seconds pass); those delivered.

        Without a budget (the retry thread) it gives way at once to a delivery under way elsewhere;
        with one (a request) it waits for it within the budget, as that one delivers in order anyway.
        """
        done: list[int] = []
        deadline = None if budget is None else time.monotonic() + budget
        if not self.url or not self.outbox.path.exists():
            return done
        lock = try_lock(lock_path(self.outbox.path), wait=budget or 0.0)
        if lock is None:
            return done
        # A client per delivery, never one built before gunicorn's fork and shared by the workers.
        with lock, TrainingServiceClient(self.url, timeout=self.timeout) as client:
            while (entry := self.outbox.head()) is not None:
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    client.post_samples(self.config.name, entry.body, "application/json", entry.key)
                except RemoteError as exc:
                    dead = exc.status in PERMANENT
                    error = _described(exc)
                    self.outbox.failed(entry.seq, error, dead=dead)
                    if exc.status is not None:  # an outage is the retry thread's normal work, not an error
                        log.error("feedback %s %s: %s", entry.key, "set aside" if dead else "will be retried", error)
                    if not dead:
                        break
                    continue
                self.outbox.delivered(entry.seq)
                done.append(entry.seq)
        return done

    def report_monitors(self, every: float) -> bool:
        """Send the monitors' state to the training service unless this process did within `every` seconds.

        Pushed, not pulled: the ML service already knows where the training service is (feedback's URL),
        while the training service knows config sets, not where each is served. A failure is only logged:
        the next report, a retry_interval later, says the same or newer.
        """
        if not self.url or self.monitors is None or time.monotonic() - self._reported < every:
            return False
        self._reported = time.monotonic()
        try:
            report = self.monitors()
            with TrainingServiceClient(self.url, timeout=self.timeout) as client:
                client.put_monitors(self.config.name, report)
        except RemoteError as exc:
            log.debug("monitors not reported to %s: %s", self.url, exc)
            return False
        return True

    def ensure_background(self) -> None:
        """Start this process's retry thread once (after gunicorn's fork, not before)."""
        if not self.url or self._thread_pid == os.getpid():
            return
        self._thread_pid = os.getpid()
        self._stop = threading.Event()
        threading.Thread(target=self._retry_loop, name="mlrm-feedback", daemon=True).start()

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.retry_interval):
            try:
                if self.outbox.path.exists():
                    self.deliver()
                self.report_monitors(every=0.0)
            except Exception:  # noqa: BLE001 (the thread must outlive any one failure)
                log.exception("feedback delivery failed")

    def close(self) -> None:
        """Stop the retry thread (entries stay in the outbox)."""
        self._stop.set()
        self._thread_pid = None

    def status(self) -> dict[str, Any]:
        return {"training_service": self.url, "outbox": str(self.outbox.path), **self.outbox.counts()}
