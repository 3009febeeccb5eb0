"""The transport-free training service: what every endpoint does.

The Flask layer (api.py) decodes a request, calls one method here and
encodes the answer; a CLI or another transport could call the same methods.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mlrm.errors import FieldError, NotFoundError, RequestError, StateError
from mlrm.storage.versions import VersionStore
from training_service import ingest, jobs, selector, triggers
from training_service.handout import Current, Handout
from training_service.scheduler import HEARTBEAT
from training_service.services import ConfigRoot
from training_service.settings import Settings
from training_service.sqlite_store import REPAIR as STORE_FIX  # noqa: F401 (the CLI's words for a damaged file)
from training_service.store import Job, Store, StoreFull, iso
from training_service.store_url import open_store

if TYPE_CHECKING:
    from training_service.metrics import TrainingMetrics

MONITORS_SHAPE = 'expected {"drift": GET /v1/drift answer, "performance": GET /v1/performance answer}'

log = logging.getLogger("training_service.core")
MAX_KEY_LENGTH = 255
MAX_PAGE = 1000


def refused_by_gate(store: VersionStore, version: int) -> str | None:
    """Why the promotion gate refused a stored version, or None if it was promoted."""
    try:
        parameters = store.parameters(version)
    except StateError:
        return None  # set_current says what is wrong with it
    if parameters.get("promoted", True):
        return None
    return str((parameters.get("gate") or {}).get("reason") or "no reason recorded")


class TrainingService:
    """Samples, jobs, versions and rollback for every config set under one root."""

    def __init__(self, settings: Settings, *, store: Store | None = None, services: ConfigRoot | None = None) -> None:
        self.settings = settings
        self.services = services or ConfigRoot(settings.config_root)
        self.store = store or open_store(settings.store_url)
        # Ingest counts and latency (training_service/metrics.py); set by the app or the MQTT subscriber.
        self.metrics: TrainingMetrics | None = None
        self.handout = Handout()
        self.store.migrate()
        # Built in gunicorn's master before it forks: no connection may cross fork(); each worker opens its own.
        self.store.close()

    # Samples

    def add_samples(self, name: str, mimetype: str, body: bytes, key: str | None) -> tuple[dict[str, Any], bool]:
        """Validate and durably store a batch; (the 202 body, whether it is a replay of an earlier post)."""
        config = self.services.get(name)
        if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
            raise RequestError(
                "Invalid Idempotency-Key", 400, kind="invalid-idempotency-key",
                detail=f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            )  # fmt: skip
        fingerprint = ingest.fingerprint(mimetype, body)
        if key is not None:
            earlier = self.store.find_batch(name, key)
            if earlier is not None:
                return self._replay(key, fingerprint, *earlier), True
        started = time.perf_counter()
        batch = ingest.decode(mimetype, body, self.settings.max_records)
        checked = ingest.check(config, batch)
        if not checked.samples:
            self._ingested(name, 0, checked.total, started)
            raise ingest.nothing_accepted(checked)
        self._writable(len(body))
        try:
            response, replayed = self.store.add_batch(
                name, checked.samples, key, fingerprint,
                lambda ids, batch_id: ingest.report(name, checked, ids, batch_id),
            )  # fmt: skip
        except StoreFull as exc:
            raise self._full(str(exc)) from None
        if replayed:  # a concurrent retry with the same key committed first
            return self._replay(key or "", fingerprint, fingerprint, response), True
        self._ingested(name, len(checked.samples), checked.total - len(checked.samples), started)
        return response, False

    def _ingested(self, name: str, accepted: int, rejected: int, started: float) -> None:
        if self.metrics is not None:
            self.metrics.ingested(name, accepted, rejected, time.perf_counter() - started)

    def _writable(self, size: int) -> None:
        """Refuse a post the store cannot safely take: damaged (503), or its disk near full (507)."""
        damage = self.store.damage()
        if damage is not None:
            raise RequestError(
                "Store unusable", 503, kind="store-unusable", detail=f"the sample store is damaged ({damage}); "
                f"nothing was stored. {self.store.repair}",
            )  # fmt: skip
        free = self.store.free_bytes()
        # A post grows the store by about three times its body (JSON record, WAL copy, index).
        if free - 3 * size < self.settings.min_free_bytes:
            raise self._full(
                f"only {free} bytes free on the store's disk; ingest stops at {self.settings.min_free_bytes} "
                "(training-service --min-free-bytes); nothing was stored"
            )

    @staticmethod
    def _full(why: str) -> RequestError:
        return RequestError(
            "Insufficient storage", 507, kind="insufficient-storage",
            detail=f"{why}. Free space on that disk, delete old samples (mlrm samples delete SERVICE --before TIME) "
            "or set training.retention, then post again",
        )  # fmt: skip

    @staticmethod
    def _replay(key: str, fingerprint: str, stored: str, response: dict[str, Any]) -> dict[str, Any]:
        if stored != fingerprint:
            raise RequestError(
                "Idempotency-Key reused", 422, kind="idempotency-key-reused",
                detail=f"Idempotency-Key {key!r} was already used for a different body; use a new key for new data",
            )  # fmt: skip
        return response

    def stats(self, name: str) -> dict[str, Any]:
        """Counts, new since the current version and since the last training run, label balance, time range."""
        config = self.services.get(name)
        version, through = jobs.current_watermark(config)
        numbers = self.store.sample_stats(name, through)
        last = self.store.last_training(name)
        since_training = through if last is None or last.samples_through is None else last.samples_through
        new_since_training = self.store.count_since(name, since_training)
        wanted = config.training.triggers
        elapsed = time.time() - last.created_at if last else 0.0
        out: dict[str, Any] = {
            "service": name,
            "total": numbers["total"],
            "quarantined": numbers["quarantined"],  # of total; kept, never trained on
            "new_since_current": numbers["new"],
            "new_since_last_training": new_since_training,
            "current_version": version,
            "batches": numbers["batches"],
            "last_id": numbers["last_id"],
            "first_received_at": numbers["first_received_at"],
            "last_received_at": numbers["last_received_at"],
            "triggers": {**asdict(wanted), "due": triggers.due(wanted, new_since_training, elapsed) if last else None},
            "last_training_job": last.id if last else None,
        }
        if config.task == "classification":
            counts = {str(label): numbers["labels"].get(str(label), 0) for label in config.labels}
            total = max(1, numbers["total"])
            out["labels"] = counts
            out["label_share"] = {k: round(v / total, 4) for k, v in counts.items()}
        elif config.task == "regression":
            out["target"] = numbers["target"]
        return out

    # Review

    def list_samples(self, name: str, args: dict[str, str]) -> dict[str, Any]:
        """One page of stored samples (by id); pass next_after back as after for the next page."""
        self.services.get(name)
        values = dict(args)
        paging: dict[str, int] = {}
        for key, default, low, high in (("after", 0, 0, selector.MAX_ID), ("limit", 100, 1, MAX_PAGE)):
            text = values.pop(key, str(default))
            number = int(text) if text.isdigit() else -1
            if number < low or (high is not None and number > high):
                limits = f"{low} to {high}" if high else f">= {low}"
                raise RequestError("Invalid request", 422, errors=[FieldError(key, f"expected {limits}, got {text!r}")])
            paging[key] = number
        state = values.pop("state", "all")
        if state not in ("all", "quarantined", "active"):
            raise RequestError(
                "Invalid request", 422, errors=[FieldError("state", "expected all, active or quarantined")]
            )
        chosen, _ = selector.parse(values, query=True)
        quarantined = None if state == "all" else state == "quarantined"
        rows = self.store.list_samples(name, chosen, quarantined, paging["after"], paging["limit"])
        more = len(rows) == paging["limit"]
        return {"service": name, "samples": rows, "next_after": rows[-1]["id"] if more else None}

    def change_samples(self, name: str, action: str, body: Any) -> dict[str, Any]:
        """quarantine (kept, never trained on), release or delete the samples a selector names."""
        self.services.get(name)
        chosen = selector.for_change(body)
        done = self.store.change_samples(name, chosen, action)
        return {"service": name, "action": action, "selector": body, **done}

    # Jobs

    def train(self, name: str, trigger: str = "on_demand") -> tuple[dict[str, Any], bool]:
        """Queue a training run (the scheduler starts it); joins the active one if there is one."""
        config = self.services.get(name)
        job, created = self.store.create_job(name, str(config.path), trigger)
        return job.as_dict(), created

    def job(self, job_id: int) -> dict[str, Any]:
        return self._job(job_id).as_dict()

    # Monitors (what the ML services report for training.triggers.drift and .performance)

    def put_monitors(self, name: str, body: Any) -> dict[str, Any]:
        """Keep an ML service's report of its monitors; the answer says whether a monitor trigger would fire."""
        config = self.services.get(name)
        if not isinstance(body, dict):
            raise RequestError("Invalid request", 422, errors=[FieldError("", MONITORS_SHAPE)])
        for key, value in body.items():
            if key not in ("drift", "performance"):
                raise RequestError(
                    "Invalid request", 422, errors=[FieldError(f"/{key}", f"unknown key; {MONITORS_SHAPE}")]
                )
            if value is not None and not isinstance(value, dict):
                raise RequestError(
                    "Invalid request", 422, errors=[FieldError(f"/{key}", "expected the route's JSON object")]
                )
        self.store.put_monitors(name, body)
        version, _ = jobs.current_watermark(config)
        reason = triggers.monitored(config.training.triggers, body.get("drift"), body.get("performance"), version)
        return {"stored": True, "current_version": version, "would_fire": reason}

    def monitors(self, name: str) -> dict[str, Any]:
        self.services.get(name)
        found = self.store.monitors(name)
        report, received = found if found else ({}, None)
        return {"service": name, "received_at": iso(received), **report}

    def _job(self, job_id: int) -> Job:
        job = self.store.job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def jobs(self, name: str, limit: int = 20) -> dict[str, Any]:
        self.services.get(name)
        return {"service": name, "jobs": [j.as_dict() for j in self.store.jobs(name, limit)]}

    # Versions

    def versions(self, name: str) -> dict[str, Any]:
        """Every stored version with its metric, whether the gate promoted it, and why."""
        config = self.services.get(name)
        store = VersionStore(config.learned_dir)
        current = store.current()
        out = []
        for v in store.versions():
            try:
                p = store.parameters(v)
            except StateError as exc:
                out.append({"version": v, "error": str(exc)})
                continue
            gate = p.get("gate") or {}
            out.append({
                "version": v, "current": v == current, "created_at": p.get("created_at"),
                "metric": p.get("metric"), "score": (p.get("metrics") or {}).get(config.metric),
                "metrics": p.get("metrics"), "rows": (p.get("data") or {}).get("rows"),
                "promoted": p.get("promoted", True), "reason": gate.get("reason"),
                "job": (p.get("training_job") or {}).get("id"),
            })  # fmt: skip
        return {"service": name, "current": current, "versions": out}

    def rollback(self, name: str, body: Any) -> dict[str, Any]:
        """Make a stored version current (atomically); running ML services switch to it.

        A version the promotion gate refused needs {"force": true}: it was judged worse than the one
        it would replace, so making it current must be a deliberate act (and the audit log shows it).
        """
        config = self.services.get(name)
        if not isinstance(body, dict) or "version" not in body or not set(body) <= {"version", "force"}:
            raise RequestError(
                "Invalid request", 422, errors=[FieldError("", 'expected {"version": N, "force": false}')]
            )
        version, force = body["version"], body.get("force", False)
        if type(version) is not int or version < 1:
            raise RequestError(
                "Invalid request", 422, errors=[FieldError("/version", "expected a version number >= 1")]
            )
        if type(force) is not bool:
            raise RequestError("Invalid request", 422, errors=[FieldError("/force", "expected true or false")])
        store = VersionStore(config.learned_dir)
        if version not in store.versions():
            raise NotFoundError(f"'{name}' has no version {version}; stored: {store.versions()}")
        refused = refused_by_gate(store, version)
        if refused is not None and not force:
            raise RequestError(
                "Version refused by the gate", 409, kind="version-refused",
                detail=f"version {version} of '{name}' was refused by the promotion gate ({refused}). To make it "
                f'current anyway, send {{"version": {version}, "force": true}} with an admin token; it is recorded '
                "in the audit log",
            )  # fmt: skip
        before = store.current()
        try:
            store.set_current(version)
        except StateError as exc:
            raise RequestError("Version unusable", 409, detail=str(exc), kind="version-unusable") from None
        answer = {"service": name, "version": version, "previous": before}
        forced = " (forced past the gate)" if refused is not None else ""
        log.info("%s: rollback: version %s is current (was %s)%s", name, version, before, forced)
        return {**answer, "forced": True} if refused is not None else answer

    # Versions handed out to gateways that follow this service (handout.py)

    def current(self, name: str) -> Current:
        """The current version and its parameters.yaml digest (its ETag), cheap enough to poll."""
        return self.handout.current(name, self.services.get(name).learned_dir)

    def bundle(self, name: str, version: int) -> dict[str, Any]:
        """Every file of a stored version with its sha256, size and URL."""
        return self.handout.bundle(name, self.services.get(name).learned_dir, version)

    def version_file(self, name: str, version: int, file: str) -> bytes:
        """One file of a stored version, by a name its bundle lists."""
        return self.handout.file(name, self.services.get(name).learned_dir, version, file)

    # Overview

    def describe(self, name: str) -> dict[str, Any]:
        config = self.services.get(name)
        section = config.training
        version, _ = jobs.current_watermark(config)
        active = self.store.active_job(name)
        return {
            "name": name, "path": str(config.path), "algorithm": config.algorithm, "task": config.task,
            "metric": config.metric, "current_version": version, "triggers": asdict(section.triggers),
            "gate": asdict(section.gate), "active_job": active.as_dict() if active else None,
        }  # fmt: skip

    def index(self) -> dict[str, Any]:
        """Every config set: the usable ones described, the unusable ones with reason and fix."""
        usable = [{**self.describe(n), "available": True} for n in self.services.names()]
        return {"services": usable + self.services.describe_unavailable(), "store": self.store.url}

    def health(self) -> dict[str, Any]:
        """Live, and 'degraded' (not dead) while some config set cannot be used; 'unusable' with a damaged store."""
        beat = self.store.heartbeat(HEARTBEAT)
        age = None if beat is None else round(time.time() - beat, 3)
        alive = age is not None and age < max(5.0, self.settings.poll_interval * 10)
        unavailable = self.services.describe_unavailable()
        damage = self.store.damage()
        store: dict[str, Any] = {"ok": damage is None, "free_bytes": self.store.free_bytes()}
        if damage is not None:
            store.update(reason=f"the sample store is damaged: {damage}", fix=self.store.repair)
        return {
            "live": True,
            "status": "unusable" if damage else "degraded" if unavailable else "ok",
            "unavailable": unavailable,
            "store": store,
            "scheduler": {"alive": alive, "last_seen": iso(beat), "age_s": age},
        }
