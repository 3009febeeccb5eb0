"""One training run of one service: read the stored samples, fit a candidate,
score it and the current model on the same holdout, let the gate decide, and
write the candidate back into the config set (current only if promoted).

Runs in its own process (started by the scheduler), so ingest never waits
for a fit. Every step is recorded on the job row: progress, timings, result.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

from mlrm.config import ServiceConfig, load_config_set
from mlrm.core.model import Model
from mlrm.errors import ConfigError, DataError, MlrmError, StateError
from mlrm.storage.versions import VersionStore
from mlrm.training.csv_files import read_file
from mlrm.training.trainer import dataset, evaluate, fit, record_profile, save
from training_service import gate
from training_service.holdout import STABLE, file_ids, rule, split_ids, unseen
from training_service.store import Job, Lock, Store

if TYPE_CHECKING:
    from mlrm.training.trainer import Dataset
    from training_service.metrics import TrainingMetrics

log = logging.getLogger("training_service.jobs")

# Exit codes of a job process that did not run its job to the end on purpose.
LOCK_BUSY = 75  # another process of the service holds the job lock: it never touched the job row
LOCK_LOST = 76  # its lock's session ended mid-run: the job is resumed elsewhere, never beside it
# Progress rows are commits (fsync): at most this many per second.
PROGRESS_PER_SECOND = 4


def current_watermark(config: ServiceConfig) -> tuple[int | None, int]:
    """(current version, the last sample id it was trained on; 0 if not trained by this service)."""
    versions = VersionStore(config.learned_dir)
    try:
        version = versions.current()
        if version is None:
            return None, 0
        through = (versions.parameters(version).get("data") or {}).get("samples_through")
    except StateError:
        return None, 0
    return version, int(through) if isinstance(through, int) else 0


def _job_tag(store: Store, job: Job) -> dict[str, Any]:
    return {"id": job.id, "store": store.identity, "trigger": job.trigger}


def _already_written(config: ServiceConfig, tag: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The version a previous attempt of this job wrote before it was killed, if any."""
    versions = VersionStore(config.learned_dir)
    for v in reversed(versions.versions()):
        try:
            parameters = versions.parameters(v)
        except StateError:
            continue
        found = parameters.get("training_job") or {}
        if found.get("id") == tag["id"] and found.get("store") == tag["store"]:
            return v, parameters
    return None


class Reporter:
    """The progress callback of mlrm.training.trainer, writing to the job row (throttled)."""

    def __init__(self, store: Store, job_id: int) -> None:
        self.store, self.job_id = store, job_id
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, fraction: float | None, message: str) -> None:
        now = time.monotonic()
        if stage == self.stage and fraction not in (0.0, 1.0) and now - self.last < 1 / PROGRESS_PER_SECOND:
            return
        self.stage, self.last = stage, now
        self.store.set_progress(
            self.job_id, {"stage": stage, "fraction": fraction, "message": message, "at": time.time()}
        )


def run(store: Store, job_id: int, metrics: TrainingMetrics | None = None) -> None:
    """Run one job to its end, recording success or failure on its row (and in metrics)."""
    job = store.job(job_id)
    if job is None:
        raise StateError(f"job {job_id} does not exist")
    started = time.perf_counter()
    timings: dict[str, Any] = {"queued_s": round(time.time() - job.created_at, 4)}
    try:
        result = _train(store, job, timings, Reporter(store, job_id))
    except (DataError, ConfigError, StateError, MlrmError) as exc:
        timings["total_s"] = round(time.perf_counter() - started, 4)
        store.finish_job(job_id, "failed", result=None, error=str(exc), timings=timings)
        log.error("job %s (%s) failed: %s", job_id, job.service, exc)
        if metrics is not None:
            metrics.job_ended(job.service, "failed", timings["total_s"], None)
        return
    except Exception as exc:  # a bug or a broken algorithm: keep the job record honest
        timings["total_s"] = round(time.perf_counter() - started, 4)
        store.finish_job(job_id, "failed", result=None, error=f"{type(exc).__name__}: {exc}", timings=timings)
        log.error("job %s (%s) crashed:\n%s", job_id, job.service, traceback.format_exc())
        if metrics is not None:
            metrics.job_ended(job.service, "failed", timings["total_s"], None)
        return
    timings["total_s"] = round(time.perf_counter() - started, 4)
    store.finish_job(job_id, "succeeded", result=result, error=None, timings=timings)
    # The version a promotion makes current is logged here, where it is written; the ML services log the swap.
    verdict = "current" if result["promoted"] else "kept, not current"
    log.info("job %s (%s): version %s %s: %s", job_id, job.service, result["version"], verdict, result["reason"])
    if metrics is not None:
        metrics.job_ended(job.service, "succeeded", timings["total_s"], bool(result["promoted"]))


def _train(store: Store, job: Job, timings: dict[str, Any], progress: Reporter) -> dict[str, Any]:
    # The watermark goes first, so even a failed run counts as "trained on these".
    through = job.samples_through if job.samples_through is not None else store.last_sample_id(job.service)
    store.set_through(job.id, through)
    config = load_config_set(job.config_path)
    tag = _job_tag(store, job)
    earlier = _already_written(config, tag)
    if earlier is not None:  # killed after writing the version, before the job row was updated
        return _finish_earlier(config, *earlier, progress)

    t = time.perf_counter()
    progress("data", None, f"reading samples up to #{through}")
    ids, records = _samples(store, config, job.service, through)
    base_ids, base, files = _base_files(config)
    data = dataset(config, base + records, strings=True)
    minimum = config.training.min_rows
    if len(data) < minimum:
        raise DataError(
            f"only {len(data)} usable samples ({data.rejected_rows} rejected); training.min_rows is {minimum}"
        )
    every_id = np.concatenate([base_ids, np.asarray(ids, dtype=np.int64)])
    train_part, holdout, how, held_ids = split_ids(config, data, every_id[data.rows])
    our_rule = rule(config, files) if how == STABLE else None
    timings["load_s"] = round(time.perf_counter() - t, 4)
    progress("data", 1.0, f"{len(train_part)} rows to train, {len(holdout)} held out, {data.rejected_rows} rejected")

    t = time.perf_counter()
    model = fit(config, train_part, progress)
    timings["fit_s"] = round(time.perf_counter() - t, 4)

    t = time.perf_counter()
    progress("evaluate", None, f"scoring candidate and current model on {len(holdout)} held-out rows")
    metrics = evaluate(config, model, holdout)
    record_profile(config, model, train_part, holdout)
    comparable, gate_how = _comparable(store, config, holdout, held_ids, our_rule)
    previous, current_metrics, current_error = _score_current(config, comparable)
    rows = None if gate_how == NO_CURRENT else len(comparable)
    decision = gate.decide(config.metric, config.training.gate, _scores(config, model, comparable, metrics),
                           current_metrics, rows)  # fmt: skip
    timings["evaluate_s"] = round(time.perf_counter() - t, 4)

    result: dict[str, Any] = {
        "promoted": decision.promote,
        "reason": decision.reason,
        "version": None,
        "previous_version": previous,
        "metric": config.metric,
        "candidate_metrics": metrics,
        "current_metrics": current_metrics,
        "current_error": current_error,
        "gate": decision.as_dict(),
        "rows": len(data),
        "train_rows": len(train_part),
        "holdout_rows": len(holdout),
        "holdout": how,
        "gate_rows": len(comparable),  # held-out rows neither model trained on: what the gate compared them on
        "gate_rows_how": gate_how,
        "base_rows": len(base),
        "rejected": data.rejected_rows,  # samples; one may have several problems, listed below
        "first_rejected": [e.as_dict() for e in data.rejected[:5]],
        # By sample id, so an admin can quarantine or delete them (mlrm samples); the job trained without them.
        "rejected_ids": _rejected_ids(ids, data.accepted),
        "samples_through": through,
    }
    progress("save", None, "writing the new version" if decision.promote else "keeping the refused candidate on record")
    t = time.perf_counter()
    info = {
        "rows": len(data), "train_rows": len(train_part), "holdout_rows": len(holdout),
        "rejected": data.rejected_rows, "fingerprint": data.fingerprint(), "samples_through": through,
        "holdout_rule": our_rule, "base_rows": len(base), "samples": len(ids), "gate_rows": len(comparable),
    }  # fmt: skip
    # The version number is only known once written: store the result without it, then report it.
    version = save(
        config, model, metrics, data=info, timings=dict(timings), make_current=decision.promote,
        extra={"promoted": decision.promote, "gate": decision.as_dict(), "training_job": {**tag, "result": result}},
    )  # fmt: skip
    result["version"] = version
    timings["save_s"] = round(time.perf_counter() - t, 4)
    progress("save", 1.0, f"version {version} {'is current' if decision.promote else 'kept, not current'}")
    return result


def _samples(store: Store, config: ServiceConfig, service: str, through: int) -> tuple[list[int], list[Any]]:
    """The stored samples a job trains on: all up to through, or the newest by training.data.samples."""
    ids, records = store.identified(service, through)
    window = config.training.data.samples
    if window.max_age is not None:
        first = store.first_id_since(service, time.time() - window.max_age)
        keep = [i for i, sample in enumerate(ids) if sample >= first]
        ids, records = [ids[i] for i in keep], [records[i] for i in keep]
    if window.last is not None and len(ids) > window.last:
        ids, records = ids[-window.last :], records[-window.last :]
    return ids, records


def _base_files(config: ServiceConfig) -> tuple[np.ndarray, list[Any], dict[str, str]]:
    """(ids, records, name -> sha256) of training.data.files, each row checked like a posted sample."""
    ids: list[np.ndarray] = []
    records: list[Any] = []
    digests: dict[str, str] = {}
    for index, name in enumerate(config.training.data.files):
        path = config.path / name
        table = read_file(path, config)
        checked = dataset(config, table.records, strings=True, invalid=table.invalid)
        if checked.rejected:
            first = checked.rejected[0]
            row = int(first.pointer.split("/")[2])
            raise DataError(
                f"{path}: {checked.rejected_rows} row(s) fail the config set's checks, first on line "
                f"{table.lines[row]} ({first.pointer}): {first.detail} "
                f"(training.data.files[{index}]; fix or remove those rows)"
            )
        ids.append(file_ids(index, len(table.records)))
        records += table.records
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return (np.concatenate(ids) if ids else np.empty(0, dtype=np.int64)), records, digests


NO_CURRENT = "no current version"


def _comparable(
    store: Store, config: ServiceConfig, holdout: Dataset, held_ids: np.ndarray, our_rule: dict[str, Any] | None
) -> tuple[Dataset, str]:
    """The held-out rows the current version cannot have trained on, and how that is known (holdout.unseen)."""
    if our_rule is None:  # a random split this once: only what arrived after the current version is safe
        held_ids = np.zeros(len(holdout), dtype=np.int64)
    versions = VersionStore(config.learned_dir)
    try:
        version = versions.current()
        parameters = versions.parameters(version) if version is not None else None
    except StateError:
        parameters = None
    if parameters is None:
        return holdout, NO_CURRENT
    same = our_rule is not None and (parameters.get("data") or {}).get("holdout_rule") == our_rule
    if same:
        return holdout, "the current version was trained under the same holdout rule"
    # Received after its parameters.yaml was written (never before it was fitted; a copy or an install is
    # younger still, which only leaves rows out) and past the samples it read.
    assert version is not None
    created = (versions.path_of(version) / "parameters.yaml").stat().st_mtime
    through = (parameters.get("data") or {}).get("samples_through")
    first = max(store.first_id_since(config.name, created), (through if isinstance(through, int) else 0) + 1)
    keep = unseen(held_ids, False, first)
    return holdout.take(np.flatnonzero(keep)), f"samples received after the current version was made (id >= {first})"


def _scores(config: ServiceConfig, model: Model, rows: Dataset, fallback: dict[str, float]) -> dict[str, float]:
    """The candidate's metrics on the rows the gate compares on (its own holdout's when they are the same)."""
    return evaluate(config, model, rows) if len(rows) else fallback


def _rejected_ids(ids: list[int], accepted: list[int], limit: int = 100) -> list[int]:
    """The first sample ids that failed re-validation (records are in id order, indexes into ids)."""
    kept = set(accepted)
    return [sample for i, sample in enumerate(ids) if i not in kept][:limit]


def _finish_earlier(
    config: ServiceConfig, version: int, parameters: dict[str, Any], progress: Reporter
) -> dict[str, Any]:
    """The result of an attempt that wrote its version, completing its promotion if it was cut off."""
    result: dict[str, Any] = parameters["training_job"]["result"]
    versions = VersionStore(config.learned_dir)
    # Killed between the version's rename and current.yaml (and nobody changed current since): finish it.
    if parameters.get("promoted") and versions.current() == result.get("previous_version"):
        versions.set_current(version)
    progress("save", 1.0, f"version {version} was already written by an earlier attempt")
    return dict(result, version=version, resumed=True)


def _score_current(config: ServiceConfig, holdout: Any) -> tuple[int | None, dict[str, float] | None, str | None]:
    """(current version, its metrics on the holdout, why it could not be scored)."""
    versions = VersionStore(config.learned_dir)
    try:
        record = versions.read_current()
        if record is None:
            return None, None, None
        if not len(holdout):
            return record.version, None, "no held-out row it cannot have trained on"
        model = Model.from_record(config, record)
        return record.version, evaluate(config, model, holdout), None
    except (StateError, OSError, ValueError, KeyError) as exc:
        return None, None, f"the current version could not be scored: {exc}"


def process_main(store_url: str, job_id: int, service: str) -> None:
    """Entry point of a job process (forked by the scheduler)."""
    from training_service.store_url import open_store

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = open_store(store_url)  # never the parent's connection: it must not cross fork()
    lock = store.try_lock(f"job-{service}")
    if lock is None:
        log.error("job %s: another job of %s is still running; leaving it queued", job_id, service)
        os._exit(LOCK_BUSY)
    done = threading.Event()
    threading.Thread(target=_exit_if_lost, args=(lock, done), name="job-lock", daemon=True).start()
    store.start_job(job_id, os.getpid())
    from training_service.metrics import TrainingMetrics

    run(store, job_id, TrainingMetrics())
    done.set()
    store.close()
    lock.release()


def _exit_if_lost(lock: Lock, done: threading.Event, every: float = 1.0) -> None:
    """End this job process at once if its lock is lost (its PostgreSQL session ended): from then on another
    scheduler may start the job again, and it must never run twice at the same time."""
    while not done.wait(every):
        if not lock.held():
            log.error(
                "job process %s: its lock in the store was lost; stopping so the job is resumed once", os.getpid()
            )
            os._exit(LOCK_LOST)
