"""What one scrape of an ML service's /metrics says, and the chart points between two scrapes.

/metrics is already summed over every gunicorn worker (mlrm/rest/metrics.py), so a scrape is the
service's whole count, however many workers answer. Counters only grow while the service runs; a
smaller total means it restarted, and the new total is then what happened since (as Prometheus's
rate() treats a reset). Label sets are summed over whatever labels the dashboard does not use
(e.g. `model` when one process serves several config sets). Drift (`mlrm_drift_*`) and live
performance (`mlrm_performance_*`) are gauges: a scrape keeps their values as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# Requests the charts leave out: what the dashboard and `mlrm status` ask themselves (GET / for the
# version, scrapes, drift and performance figures) and probes, which say nothing about the work a
# service does for its clients.
NOT_WORK = (
    "/", "/v1/models", "/metrics", "/v2/health/live", "/v2/health/ready", "/v2/models/<name>/ready",
    "/v1/drift", "/v1/models/<name>/drift", "/v1/performance", "/v1/models/<name>/performance",
)  # fmt: skip


def _work(endpoint: str) -> bool:
    return endpoint not in NOT_WORK and not endpoint.endswith("/ready")


@dataclass
class Scrape:
    """The totals of one /metrics answer."""

    requests: float = 0.0
    errors: float = 0.0  # answered with a status of 400 or more
    buckets: dict[float, float] = field(default_factory=dict)  # latency: upper bound (s) -> cumulative count
    predictions: dict[str, float] = field(default_factory=dict)  # label -> rows predicted
    versions: dict[str, int] = field(default_factory=dict)  # model -> version serving
    ready: dict[str, bool] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)  # input -> PSI of the drift window
    drift_predictions: float | None = None  # PSI of the window's predictions
    drift_rows: float | None = None  # rows in the drift window; None: no drift figures (no profile)
    metric: str | None = None  # the config set's metric, when feedback scored predictions
    rolling: float | None = None  # that metric over the predictions scored in the window
    holdout: float | None = None  # ... and on the serving version's holdout
    performance_rows: float | None = None

    @property
    def overall(self) -> float | None:
        """The largest input PSI: the figure a drift trigger acts on."""
        return max(self.drift.values()) if self.drift else None


def _gauge(out: Scrape, name: str, labels: dict[str, str], value: float) -> None:
    """The drift and performance gauges of one sample (NaN: not a figure)."""
    if math.isnan(value):
        return
    if name == "mlrm_drift_psi":
        out.drift[labels.get("input", "")] = value
    elif name == "mlrm_drift_prediction_psi":
        out.drift_predictions = value
    elif name == "mlrm_drift_window_rows":
        out.drift_rows = value
    elif name == "mlrm_performance_rolling":
        out.metric, out.rolling = labels.get("metric"), value
    elif name == "mlrm_performance_holdout":
        out.metric, out.holdout = labels.get("metric"), value
    elif name == "mlrm_performance_window_rows":
        out.performance_rows = value


GAUGES = (
    "mlrm_drift_psi",
    "mlrm_drift_prediction_psi",
    "mlrm_drift_window_rows",
    "mlrm_performance_rolling",
    "mlrm_performance_holdout",
    "mlrm_performance_window_rows",
)


def parse(text: str, model: str | None = None) -> Scrape:
    """A Scrape of Prometheus text exposition (families the dashboard does not know are skipped).

    model: only the samples of this config set (its `model` label), for a process that serves several."""
    out = Scrape()
    labelled: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if model is not None and labels.get("model") != model:
                continue
            if name == "mlrm_requests_total" and _work(labels.get("endpoint", "")):
                out.requests += value
                if labels.get("status", "").isdigit() and int(labels["status"]) >= 400:
                    out.errors += value
            elif name == "mlrm_request_duration_seconds_bucket" and _work(labels.get("endpoint", "")):
                bound = float(labels.get("le", "inf"))
                out.buckets[bound] = out.buckets.get(bound, 0.0) + value
            elif name == "mlrm_predictions_total":
                key = (labels.get("model", ""), labels.get("label", ""))
                labelled[key] = labelled.get(key, 0.0) + value
            elif name == "mlrm_model_version" and not math.isnan(value):
                out.versions[labels.get("model", "")] = int(value)
            elif name == "mlrm_model_ready":
                out.ready[labels.get("model", "")] = value >= 1
            elif name in GAUGES:
                _gauge(out, name, labels, value)
    models = {model for model, _ in labelled}
    for (model, label), value in labelled.items():
        out.predictions[label if len(models) == 1 else f"{model}: {label}"] = value
    return out


def quantile(q: float, deltas: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram's (upper bound, cumulative count) increase, as Prometheus's
    histogram_quantile estimates it: linear within the bucket; None without observations."""
    deltas = sorted(deltas)
    if not deltas or deltas[-1][1] <= 0:
        return None
    rank = q * deltas[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in deltas:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the largest finite bucket: its bound is all we know
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def point(before: Scrape, after: Scrape, seconds: float) -> dict[str, Any]:
    """Rate (requests/s), error share, p50 and p99 latency (ms) over the seconds between two scrapes;
    the drift and performance gauges as the later scrape gives them."""
    base = Scrape() if after.requests < before.requests else before  # fewer: the service restarted
    requests = after.requests - base.requests
    errors = max(0.0, after.errors - base.errors)
    deltas = [(bound, count - base.buckets.get(bound, 0.0)) for bound, count in after.buckets.items()]
    p50, p99 = quantile(0.5, deltas), quantile(0.99, deltas)
    return {
        "rate": round(requests / seconds, 3) if seconds > 0 else None,
        "errors": round(errors / requests, 4) if requests > 0 else None,
        "p50": None if p50 is None else round(p50 * 1000, 3),
        "p99": None if p99 is None else round(p99 * 1000, 3),
        "psi": _round(after.overall),
        "prediction_psi": _round(after.drift_predictions),
        "rolling": _round(after.rolling),
        "holdout": _round(after.holdout),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
