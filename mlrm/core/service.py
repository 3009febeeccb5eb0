"""The transport-free core of an ML service: one config set, its current model.

REST, MQTT and anything else decode a request, call Service, and encode the
answer. Service watches the config set's current version and swaps in a new
one only after it has loaded and passed a smoke prediction; a version that
fails keeps the old one serving and is reported in status().
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from mlrm.config.service_config import ServiceConfig
from mlrm.core.answer import Answer
from mlrm.core.drift import DriftMonitor
from mlrm.core.model import Model
from mlrm.core.performance import PerformanceMonitor
from mlrm.core.sequence_input import SequenceInput
from mlrm.errors import NotReadyError, RequestError, StateError
from mlrm.storage.versions import VersionStore

log = logging.getLogger("mlrm.core.service")


class Service:
    """Holds the current Model of one config set and answers predictions."""

    def __init__(self, config: ServiceConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.store = VersionStore(config.learned_dir)
        self.model: Model | None = None
        self.load_error: str | None = None
        self.interval = float(config.serving.reload_interval)
        self._clock = clock
        self._checked = -float("inf")
        self._stamp: Any = None
        self.listeners: list[Callable[[Model], None]] = []
        # Called with the reason when a new current version fails to load (the old one keeps serving).
        self.failure_listeners: list[Callable[[str], None]] = []
        # Windows and the per-stream buffer, for config sets with a sequence section.
        self.sequence = SequenceInput(config) if config.sequence else None
        # Predictions scored by feedback that names their ids (docs/drift.md).
        self.performance = PerformanceMonitor(config)
        # Input and prediction drift against each version's reference profile (docs/drift.md).
        self.drift = DriftMonitor(config) if config.serving.drift.enabled else None
        if self.drift is not None:
            self.listeners.append(self.drift.attach)
        self.reload()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> int | None:
        return self.model.version if self.model else None

    @property
    def ready(self) -> bool:
        return self.model is not None

    def maybe_reload(self) -> None:
        """Check for a new current version at most every `serving.reload_interval` s."""
        if self.interval <= 0:
            return
        now = self._clock()
        if now - self._checked < self.interval:
            return
        self._checked = now
        if self.store.stamp() != self._stamp:
            self.reload()

    def reload(self) -> dict[str, Any]:
        """Load the current version if it changed; swap only if it works."""
        stamp = self.store.stamp()
        before = self.version
        try:
            pointer = self.store.pointer()
            if pointer is not None and pointer.version != before:
                record = self.store.read(pointer.version, parameters_sha256=pointer.parameters_sha256)
                model = Model.from_record(self.config, record)
                self._smoke(model)
                self.model = model
                # Per process, with its pid: each gunicorn worker swaps on its own next request, so one line
                # per service would claim a version live while other workers still answer with the old one.
                back = before is not None and model.version is not None and model.version < before
                change = "rolled back to" if back else "now serving"
                log.info("%s: %s version %s (was %s) in pid %s", self.name, change, model.version, before, os.getpid())
                for listener in self.listeners:
                    listener(model)
            self.load_error = None
        except (StateError, OSError, ValueError, KeyError, RequestError) as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("%s: could not load the current version, still serving %s: %s", self.name, before, exc)
            for failed in self.failure_listeners:
                failed(self.load_error)
        self._stamp = stamp
        return {
            "version": self.version,
            "previous": before,
            "changed": self.version != before,
            "error": self.load_error,
        }

    def _smoke(self, model: Model) -> None:
        """One prediction on a neutral row before a model may serve."""
        model.predict_matrix(np.zeros((1, *model.shape)))

    def require_model(self) -> Model:
        self.maybe_reload()
        if self.model is None:
            reason = f" ({self.load_error})" if self.load_error else ""
            raise NotReadyError(
                f"'{self.name}' has no trained model yet{reason}. Train it: "
                f"mlrm train {self.config.path} --data FILE.csv"
            )
        return self.model

    def predict(self, instances: Any) -> Answer:
        """Validate and predict; the answer names the version that answered."""
        model = self.require_model()
        limit = self.config.limits.max_instances
        if isinstance(instances, list) and len(instances) > limit:
            raise RequestError(
                "Too many instances",
                413,
                detail=f"{len(instances)} instances in one request; the limit is {limit} (limits.max_instances)",
                kind="too-many-instances",
            )
        body = self.sequence.predict(model, instances) if self.sequence else model.predict(instances)
        # Completed in place: a copy per request would cost more than the typing is worth.
        answer = cast(Answer, body)
        answer["model"] = {"name": self.name, "version": model.version}
        return answer

    def drift_report(self) -> dict[str, Any]:
        """The GET /v1/drift body: drift of what this service is asked, over every process serving it."""
        self.maybe_reload()
        if self.drift is None:
            return {
                "model": {"name": self.name, "version": self.version}, "available": False,
                "reason": f"drift monitoring is off (serving.drift.enabled: false in {self.config.path}/service.yaml)",
            }  # fmt: skip
        return self.drift.report()

    def performance_report(self) -> dict[str, Any]:
        """The GET /v1/performance body: the live metric from feedback against the version's holdout metric."""
        self.maybe_reload()
        return self.performance.report(self.model)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ready": self.ready,
            "version": self.version,
            "algorithm": self.config.algorithm,
            "load_error": self.load_error,
        }
