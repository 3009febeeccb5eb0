"""The one process that decides when to train and starts the jobs.

`mlrm training-service` forks it before gunicorn starts (it also runs alone
as `python -m training_service.scheduler`), so the API may run in several
workers while triggers are checked exactly once. A lock in the store makes a
second scheduler on the same store stand by instead of doubling jobs: a flock
beside a SQLite file, a session advisory lock on PostgreSQL, where several
instances (hosts) share one store and exactly one scheduler leads. A standby
tries again every STANDBY_RETRY_S, so it takes over within about a second of
the leader's session ending; a leader that finds its lock lost stands by.

Each tick, per service: reap a finished job process (a process that died
with its job still running puts the job back in the queue: that is how a
job resumes after a kill), start a queued job, or create one when a trigger
fires. A job left 'running' by a previous, killed service is resumed once
its process is provably gone (its lock in the store is free).

Job processes are forked from this process: it is single-threaded, and mlrm
and numpy are already imported. scikit-learn is not (about 100 MB that the
scheduler would keep at rest; training_service.services): a job imports it
when it fits.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from mlrm import logs
from mlrm.config import ServiceConfig
from mlrm.errors import ConfigError, MlrmError
from mlrm.storage import audit
from mlrm.storage.versions import VersionStore
from training_service import jobs, triggers
from training_service.services import ConfigRoot
from training_service.settings import Settings
from training_service.store import Job, Lock, Store
from training_service.store_url import open_store

log = logging.getLogger("training_service.scheduler")
HEARTBEAT = "scheduler"
# training.retention is applied at most this often per service: a count per tick would be wasted work.
RETENTION_EVERY_S = 30.0
# How often a standby scheduler tries to take the lead.
STANDBY_RETRY_S = 1.0


class Handle(Protocol):
    """A started job process."""

    @property
    def exitcode(self) -> int | None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def terminate(self) -> None: ...


def fork_job(store_url: str, job: Job) -> Handle:
    """Start a job in a forked child process."""
    process = multiprocessing.get_context("fork").Process(
        target=jobs.process_main, args=(store_url, job.id, job.service), name=f"mlrm-job-{job.id}"
    )
    process.start()
    return process


class Scheduler:
    """Triggers and job processes for every service under one config root."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        services: ConfigRoot,
        *,
        launch: Callable[[str, Job], Handle] = fork_job,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.store, self.services = settings, store, services
        self.launch, self.clock = launch, clock
        self.started = clock()
        self.children: dict[str, tuple[int, Handle]] = {}
        self._watermarks: dict[str, tuple[Any, tuple[int | None, int]]] = {}
        self._retained: dict[str, float] = {}

    def tick(self) -> None:
        """One look at every service; never raises (a bad service must not stop the others)."""
        for name in self.services.names():
            try:
                self._tick(name)
            except Exception:  # noqa: BLE001 (logged; the next tick tries again)
                log.exception("scheduler: %s", name)
        try:
            self.store.beat(HEARTBEAT)
        except Exception:  # noqa: BLE001 (a store that does not answer now: /v1/health shows the stale beat)
            log.exception("scheduler: heartbeat")

    def _tick(self, name: str) -> None:
        self._reap(name)
        self._retain(name)
        if name in self.children:
            return
        job = self.store.active_job(name) or self._trigger(name)
        if job is None:
            return
        if job.state == "queued":
            log.info("starting job %s for %s (trigger: %s, attempt %s)", job.id, name, job.trigger, job.attempts + 1)
            # The URL from the settings, not store.url: that one is redacted (no password).
            self.children[name] = (job.id, self.launch(self.settings.store_url, job))
        elif job.state == "running":
            # Not ours: left by a scheduler (here or on another host) that was killed. Its job process holds the
            # job's lock while it lives, so a free lock proves it is gone; requeued while we hold it.
            lock = self.store.try_lock(f"job-{name}")
            if lock is not None:
                try:
                    state = self.store.requeue_job(
                        job.id, "interrupted: its process is gone", self.settings.max_attempts
                    )
                finally:
                    lock.release()
                log.warning("job %s for %s was interrupted; now %s", job.id, name, state)

    def _reap(self, name: str) -> None:
        entry = self.children.get(name)
        if entry is None or entry[1].exitcode is None:
            return
        job_id, handle = entry
        handle.join()
        del self.children[name]
        if handle.exitcode == jobs.LOCK_BUSY:
            # It stood aside for a process that still runs the job (left by a killed scheduler): not an attempt.
            log.warning("job %s for %s: its lock is held by a process that still runs it; waiting", job_id, name)
            return
        job = self.store.job(job_id)
        if job is not None and job.state == "running":
            state = self.store.requeue_job(
                job_id, f"its process exited with code {handle.exitcode}", self.settings.max_attempts
            )
            log.warning("job %s for %s: process exited with code %s; now %s", job_id, name, handle.exitcode, state)

    def _retain(self, name: str) -> None:
        """Delete the samples past training.retention, oldest first, and put it on the audit record."""
        now = self.clock()
        if now - self._retained.get(name, -RETENTION_EVERY_S) < RETENTION_EVERY_S:
            return
        self._retained[name] = now
        config = self.services.get(name)
        keep = config.training.retention
        if not keep.enabled:
            return
        gone = self.store.retain(name, keep.max_age, keep.max_count)
        if gone["count"]:
            what = f"DELETE samples of {name} (training.retention max_age={keep.max_age}, max_count={keep.max_count})"
            audit.record(config.learned_dir, "scheduler", what, "training.retention", answer=gone)

    def _trigger(self, name: str) -> Job | None:
        config = self.services.get(name)
        wanted = config.training.triggers
        if not wanted.enabled:
            return None
        last = self.store.last_training(name)
        through = last.samples_through if last and last.samples_through is not None else self._watermark(config)
        since = self.clock() - (last.created_at if last else self.started)
        new = self.store.count_since(name, through)
        fired = triggers.due(wanted, new, since)
        if fired is None and wanted.monitored and new > 0:  # with nothing new, a retrain would learn nothing new
            fired = self._monitored(config, new)
        if fired is None:
            return None
        job, created = self.store.create_job(name, str(config.path), fired)
        if created:
            log.info("trigger %s fired for %s: job %s", fired, name, job.id)
        return job

    def _monitored(self, config: ServiceConfig, new: int) -> str | None:
        """The reason a monitor trigger fires (what an ML service last reported), or None.

        It also needs its min_rows new samples since the last training run: drift in the inputs shows
        before the labels that a retrain learns from arrive (feedback comes when the truth is known), and
        while the drift lasts it fires again only as often as that much new data comes in, whether the
        last candidate was promoted or refused.
        """
        found = self.store.monitors(config.name)
        if found is None:
            return None
        report = found[0]
        version = self._current(config)[0]
        reason = triggers.monitored(config.training.triggers, report.get("drift"), report.get("performance"), version)
        if reason is None:
            return None
        wanted = config.training.triggers
        needed = wanted.drift.min_rows if reason.startswith("drift:") else wanted.performance.min_rows
        return reason if new >= needed else None

    def _watermark(self, config: ServiceConfig) -> int:
        """The current version's sample watermark."""
        return self._current(config)[1]

    def _current(self, config: ServiceConfig) -> tuple[int | None, int]:
        """(current version, its sample watermark), re-read only when current.yaml changes."""
        stamp = VersionStore(config.learned_dir).stamp()
        cached = self._watermarks.get(config.name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, jobs.current_watermark(config))
            self._watermarks[config.name] = cached
        return cached[1]

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop running jobs; they are queued again and resume at the next start."""
        for name, (job_id, handle) in list(self.children.items()):
            handle.terminate()
            handle.join(timeout)
            # A deliberate stop is not the job's fault: it never counts against max_attempts.
            self.store.requeue_job(job_id, "the training service stopped", sys.maxsize)
            del self.children[name]


def run(settings: Settings, *, exit_with_parent: bool = False) -> None:
    """Schedule until SIGTERM/SIGINT (or, with exit_with_parent, until the parent is gone)."""
    services = ConfigRoot(settings.config_root)
    store = open_store(settings.store_url)
    store.migrate()
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.getppid()
    scheduler = Scheduler(settings, store, services)
    lock: Lock | None = None
    waiting_said = False
    while not stopping:
        if exit_with_parent and os.getppid() != parent:
            log.warning("the training service that started the scheduler is gone; stopping")
            break
        if lock is not None and not lock.held():
            log.warning("the scheduler lock on %s was lost (the store's session ended); standing by", store.url)
            lock.release()
            lock = None
        if lock is None:
            lock = _take_lead(store)
            if lock is None:
                if not waiting_said:
                    log.warning("another scheduler is running on %s; standing by", store.url)
                    waiting_said = True
                time.sleep(min(STANDBY_RETRY_S, settings.poll_interval * 4))
                continue
            log.info("scheduler ready: %s service(s), store %s", len(services.names()), store.url)
        scheduler.tick()
        time.sleep(settings.poll_interval)
    scheduler.shutdown()
    if lock is not None:
        lock.release()
    store.close()


def _take_lead(store: Store) -> Lock | None:
    """The scheduler lock, or None while another holds it or the store does not answer (tried again later)."""
    try:
        return store.try_lock(HEARTBEAT)
    except MlrmError as exc:
        log.warning("cannot reach the store to take the scheduler lock: %s", exc)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training_service.scheduler --config-root DIR --store URL`."""
    p = argparse.ArgumentParser(prog="python -m training_service.scheduler", description=__doc__.splitlines()[0])
    p.add_argument("--config-root", required=True)
    p.add_argument("--store", default="")
    p.add_argument("--poll-interval", type=float, default=0.5)
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--log-level", default="info")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it exits")
    args = p.parse_args(argv)
    logs.configure("training-service", None, args.log_level)  # mlrm/logs.py; $MLRM_LOG_FORMAT: text or json
    settings = Settings(
        config_root=Path(args.config_root), store_url=args.store, poll_interval=args.poll_interval,
        max_attempts=args.max_attempts, log_level=args.log_level,
    )  # fmt: skip
    try:
        run(settings, exit_with_parent=args.exit_with_parent)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MlrmError as exc:
        print(f"scheduler: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
