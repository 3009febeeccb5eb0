"""Durable samples and jobs of the training service, behind a small interface.

`Store` is what the rest of the service uses; `SQLiteStore` (sqlite_store.py) is the embedded
default (one file beside the config sets). `PostgresStore` (postgres_store.py) implements
the same methods for a central site where several instances share one database
(advisory locks instead of lock files; its docstring says how each guarantee holds).

Durability (SQLite): the database runs in WAL mode with synchronous=FULL, so every
COMMIT fsyncs the write-ahead log before it returns. A batch of samples is
acknowledged only after that COMMIT, so neither a killed process nor a power
cut loses an acknowledged sample. (synchronous=NORMAL would survive a killed
process but may lose the last commits on power loss, so it is opt-in:
`sqlite:///path?synchronous=normal`.) The Idempotency-Key of a batch is
written in the same transaction as its samples: either both are stored or
neither is, so a retried post counts exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from mlrm.errors import StoreError

if TYPE_CHECKING:
    from training_service.selector import Selector

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed")


@dataclass
class Sample:
    """One validated sample: the record as received, plus its target for stats."""

    record: dict[str, Any]
    label: str | None = None  # classification label (canonical text)
    value: float | None = None  # regression target


@dataclass
class Job:
    """One training run of one service."""

    id: int
    service: str
    config_path: str
    state: str
    trigger: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    pid: int | None = None
    samples_through: int | None = None
    progress: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of GET /v1/jobs/{id}."""
        return {
            "id": self.id,
            "service": self.service,
            "state": self.state,
            "trigger": self.trigger,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "progress": self.progress,
            "timings": self.timings,
            "samples_through": self.samples_through,
            "result": self.result,
            "error": self.error,
        }


def iso(t: float | None) -> str | None:
    """Unix time -> ISO 8601 in UTC (ms), or None."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def redact(url: str) -> str:
    """The URL as logs and errors may show it: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None and "password=" not in parts.query:
        return url  # untouched: urlunsplit would drop the empty authority of sqlite:///path
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    pairs = [p.partition("=") for p in parts.query.split("&")] if parts.query else []
    query = "&".join(f"{k}=***" if k == "password" else f"{k}{eq}{v}" for k, eq, v in pairs)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class StoreFull(StoreError):
    """The disk under the store is full: the write was rolled back, nothing of it is stored."""


class Lock(Protocol):
    def held(self) -> bool:
        """Whether it is still held (a PostgreSQL session can end under its holder)."""

    def release(self) -> None: ...


class Store(Protocol):
    """What the training service needs from durable storage."""

    url: str  # safe to show: never holds a password
    repair: str  # what an operator does when damage() reports a problem

    @property
    def identity(self) -> str:
        """The same text for this store whatever URL reaches it (version records name the job's store by it)."""

    def migrate(self) -> None:
        """Create or upgrade the schema."""

    def find_batch(self, service: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(fingerprint, stored response) of an earlier batch with this Idempotency-Key."""

    def add_batch(
        self,
        service: str,
        samples: list[Sample],
        key: str | None,
        fingerprint: str,
        respond: Callable[[list[int], int], dict[str, Any]],
    ) -> tuple[dict[str, Any], bool]:
        """Commit samples and the key in one transaction; (response, replayed).

        respond(sample ids, batch id) builds the response that is stored with
        the key, so a replay answers exactly what the first post answered.
        """

    def last_sample_id(self, service: str) -> int: ...

    def count_since(self, service: str, after_id: int) -> int: ...

    def first_id_since(self, service: str, since: float) -> int:
        """The first sample id received at or after a time (unix seconds); last_sample_id + 1 if none was."""

    def put_monitors(self, service: str, report: dict[str, Any]) -> None:
        """Keep what an ML service last reported of its monitors (GET /v1/drift, /v1/performance answers)."""

    def monitors(self, service: str) -> tuple[dict[str, Any], float] | None:
        """The last report of put_monitors and when it was received, or None."""

    def records(self, service: str, through: int) -> list[dict[str, Any]]:
        """Every stored record of the service with id <= through, in order."""

    def identified(self, service: str, through: int) -> tuple[list[int], list[dict[str, Any]]]:
        """Like records(), with the sample ids beside them."""

    def sample_stats(self, service: str, after_id: int) -> dict[str, Any]: ...

    def list_samples(
        self, service: str, selector: Selector, quarantined: bool | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        """Up to limit selected samples with id > after, by id (quarantined: only those, or only the others)."""

    def change_samples(self, service: str, selector: Selector, action: str) -> dict[str, Any]:
        """quarantine, release or delete the selected samples; {count, first_id, last_id}."""

    def retain(self, service: str, max_age: float | None, max_count: int | None) -> dict[str, Any]:
        """Delete the oldest samples beyond an age (seconds) or a count; {count, first_id, last_id}."""

    def check(self) -> str | None:
        """A full integrity check (slow; at start): what is wrong, or None."""

    def damage(self) -> str | None:
        """Why the store cannot be used now (the last check, a cheap probe), or None."""

    def free_bytes(self) -> int:
        """Free space on the disk that holds the store."""

    def create_job(self, service: str, config_path: str, trigger: str) -> tuple[Job, bool]:
        """A new queued job, or (the active job, False) if one is queued or running."""

    def job(self, job_id: int) -> Job | None: ...

    def jobs(self, service: str, limit: int = 20) -> list[Job]: ...

    def active_job(self, service: str) -> Job | None: ...

    def last_training(self, service: str) -> Job | None:
        """The newest job that read data (its samples_through is set)."""

    def start_job(self, job_id: int, pid: int) -> None: ...

    def set_through(self, job_id: int, through: int) -> None: ...

    def set_progress(self, job_id: int, progress: dict[str, Any]) -> None: ...

    def finish_job(
        self, job_id: int, state: str, *, result: dict[str, Any] | None, error: str | None, timings: dict[str, Any]
    ) -> None: ...

    def requeue_job(self, job_id: int, reason: str, max_attempts: int) -> str:
        """Put an interrupted running job back in the queue (or fail it after max_attempts); the new state."""

    def beat(self, name: str) -> None:
        """Record that a named process (the scheduler) is alive now."""

    def heartbeat(self, name: str) -> float | None: ...

    def try_lock(self, name: str) -> Lock | None:
        """An exclusive lock across processes (and, on PostgreSQL, hosts), released when the holder dies."""

    def close(self) -> None: ...
