"""How well a version does live: its predictions scored by the true values feedback brings.

A client that wants its predictions scored gives each instance an id
(`{"instances": [...], "ids": ["r1", ...]}` on POST /v1/predict, the same
`ids` beside the records of an MQTT predict message); the service remembers what it answered for each id (mlrm.storage.performance_log,
shared by every worker). Feedback that later brings the true value for the
same ids (`{"records": [...], "ids": [...]}` on POST /v1/feedback, or a
sample message on the MQTT samples topic, which the MQTT bridge reads too)
scores those predictions. GET /v1/performance gives the config set's metric over the
version's predictions scored in the last serving.drift.window seconds, beside
the metric the version scored on its holdout when it was trained, and the
drop between them (positive: worse live). The training service's
performance trigger (training.triggers.performance) fires on that drop.

The metric is computed here with numpy, the same definitions as the
trainer's scikit-learn ones: serving never imports scikit-learn.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlrm.config.schema import LOWER_IS_BETTER
from mlrm.config.service_config import ServiceConfig
from mlrm.core.answer import Answer
from mlrm.errors import FieldError, RequestError
from mlrm.storage.performance_log import PerformanceLog

if TYPE_CHECKING:
    from mlrm.core.model import Model


def directory() -> Path:
    """Where the processes of a service share the log: beside the workers' Prometheus files that `mlrm serve`
    makes, or a private temporary folder for a process alone (a test's app)."""
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(base) / "performance" if base else Path(tempfile.mkdtemp(prefix="mlrm-performance-"))


def ids_of(body: dict[str, Any], key: str | None, count: int) -> list[str] | None:
    """The ids beside a request's instances or records (strings or integers, one each), or None if absent.

    key names the list they go beside ('instances', 'records'); None for an MQTT message that is one
    record, whose ids are a list of one.
    """
    ids = body.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or len(ids) != count:
        what = f"a list of {count} ids, one per item of '{key}'" if key else "a list of one id, for the one record"
        raise RequestError("Invalid request", 422, errors=[FieldError("/ids", f"expected {what}")])
    for n, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise RequestError(
                "Invalid request", 422, errors=[FieldError(f"/ids/{n}", "expected a non-empty string or an integer")]
            )
    return [str(value) for value in ids]


def metric_of(metric: str, task: str, pairs: Sequence[tuple[Any, Any]]) -> float | None:
    """The metric of (prediction, truth) pairs, or None if it cannot be computed live (anomaly, no pairs)."""
    if not pairs or task == "anomaly":
        return None
    if task == "regression":
        p = np.array([float(a) for a, _ in pairs])
        y = np.array([float(b) for _, b in pairs])
        if metric == "mae":
            return float(np.mean(np.abs(p - y)))
        if metric == "rmse":
            return float(np.sqrt(np.mean((p - y) ** 2)))
        total = float(np.sum((y - y.mean()) ** 2))
        return 0.0 if total == 0 else 1.0 - float(np.sum((y - p) ** 2)) / total
    p_s = np.array([str(a) for a, _ in pairs])
    y_s = np.array([str(b) for _, b in pairs])
    if metric == "accuracy":
        return float(np.mean(p_s == y_s))
    labels = sorted(set(y_s.tolist()) | set(p_s.tolist()))
    support = np.array([np.sum(y_s == c) for c in labels], dtype=float)
    hit = np.array([np.sum((y_s == c) & (p_s == c)) for c in labels], dtype=float)
    said = np.array([np.sum(p_s == c) for c in labels], dtype=float)
    recall = np.divide(hit, support, out=np.zeros_like(hit), where=support > 0)
    precision = np.divide(hit, said, out=np.zeros_like(hit), where=said > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hit), where=precision + recall > 0)
    if metric == "balanced_accuracy":
        return float(np.mean(recall[support > 0]))
    if metric == "precision_macro":
        return float(np.mean(precision))
    if metric == "recall_macro":
        return float(np.mean(recall))
    if metric == "f1_weighted":
        return float(np.sum(f1 * support) / np.sum(support))
    return float(np.mean(f1))  # f1_macro


def drop(metric: str, holdout: float, live: float) -> float:
    """How much worse live is than on the holdout (positive: worse), in the metric's units."""
    return live - holdout if metric in LOWER_IS_BETTER else holdout - live


class PerformanceMonitor:
    """Remembers predictions by id and scores them with feedback, for one config set."""

    def __init__(
        self, config: ServiceConfig, log: PerformanceLog | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.config, self.clock = config, clock
        self._log = log

    @property
    def log(self) -> PerformanceLog:
        """Opened at first use: a service nobody sends ids to never makes the file (or a temporary folder)."""
        if self._log is None:
            self._log = PerformanceLog(directory() / f"{self.config.name}.sqlite")
        return self._log

    def remember(self, ids: Sequence[str | None], answer: Answer) -> None:
        """Keep what the answer predicted for each id (None: an instance sent without one, not kept)."""
        if any(i is not None for i in ids):
            self.log.remember(answer["model"]["version"], ids, answer["predictions"])

    def score(self, ids: Sequence[str], records: Sequence[dict[str, Any]]) -> int:
        """Score the predictions of these ids with the records' target values; how many matched."""
        if self.config.target is None:
            return 0
        target = self.config.target.name
        truths = {
            i: r[target] for i, r in zip(ids, records, strict=True) if isinstance(r, dict) and r.get(target) is not None
        }
        return len(self.log.score(truths))

    def report(self, model: Model | None) -> dict[str, Any]:
        """The GET /v1/performance body for the version now served."""
        config = self.config
        window = config.serving.drift.window
        version = None if model is None else model.version
        body: dict[str, Any] = {
            "model": {"name": config.name, "version": version}, "available": False, "reason": None,
            "metric": config.metric, "holdout": None, "rolling": None, "drop": None,
            "window": {"seconds": window, "rows": 0},
        }  # fmt: skip
        if model is None:
            return {**body, "reason": "no model is served yet"}
        if config.task == "anomaly":
            return {**body, "reason": "an anomaly detector's predictions have no true value to compare with"}
        holdout = (model.parameters.get("metrics") or {}).get(config.metric)
        pairs = self.log.scored(version, self.clock() - window)
        live = metric_of(config.metric, config.task, pairs)
        body["window"]["rows"] = len(pairs)
        body["holdout"] = None if holdout is None else float(holdout)
        body["rolling"] = live
        if holdout is None:
            return {**body, "reason": f"version {version} has no {config.metric} on its holdout in parameters.yaml"}
        if live is None:
            return {
                **body,
                "reason": 'no feedback matched a prediction yet: send "ids" with /v1/predict and the same ids '
                "with /v1/feedback",
            }
        return {**body, "available": True, "drop": drop(config.metric, float(holdout), live)}
