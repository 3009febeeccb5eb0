"""Prometheus metrics of one ML service, correct under several gunicorn workers.

When PROMETHEUS_MULTIPROC_DIR is set (mlrm serve sets it), every worker writes
its samples there and /metrics adds them up; without it (tests, one process)
the app's own registry is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mlrm.core.service import Service

# The text format generate_latest writes, named once: CONTENT_TYPE_LATEST is now OpenMetrics 1.0.0's,
# and Flask's mimetype= would append a second charset, which strict scrapers reject.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metrics one app records."""

    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Read at each scrape, beside the registry's samples (the drift figures).
        self.collectors: list[Collector] = []
        r = self.registry
        # model: the config set a request went to ("" for a route of the whole service, or an unknown name).
        self.requests = Counter(
            "mlrm_requests", "HTTP requests.", ["endpoint", "method", "status", "model"], registry=r
        )
        self.latency = Histogram(
            "mlrm_request_duration_seconds",
            "Request latency.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter("mlrm_predictions", "Predicted rows by label.", ["model", "label"], registry=r)
        self.rows = Counter("mlrm_prediction_rows", "Rows predicted.", ["model"], registry=r)
        self.version = Gauge(
            "mlrm_model_version",
            "Version of the model serving.",
            ["model"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.ready = Gauge(
            "mlrm_model_ready", "1 when a model is loaded.", ["model"], registry=r, multiprocess_mode="livemax"
        )
        # Per worker: each gunicorn worker swaps in a new version itself, so one version counts once per worker.
        self.reloads = Counter("mlrm_model_reloads", "Versions swapped in, per worker.", ["model"], registry=r)
        self.reload_failures = Counter(
            "mlrm_model_reload_failures",
            "Versions that failed to load (the old one kept serving).",
            ["model"],
            registry=r,
        )

    def render(self) -> bytes:
        return render(self.registry, *self.collectors)


class DriftCollector:
    """mlrm_drift_* gauges, computed at scrape time from the counts of every worker and the MQTT bridge."""

    def __init__(self, services: Callable[[], list[Service]]) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        by_input = GaugeMetricFamily(
            "mlrm_drift_psi", "Input drift: PSI of the window against the reference profile.", labels=["model", "input"]
        )
        predicted = GaugeMetricFamily(
            "mlrm_drift_prediction_psi", "Prediction drift: PSI against the holdout's predictions.", labels=["model"]
        )
        rows = GaugeMetricFamily("mlrm_drift_window_rows", "Rows in the drift window.", labels=["model"])
        for service in self.services():
            report: dict[str, Any] = service.drift.report() if service.drift is not None else {"available": False}
            if not report["available"]:
                continue
            name = service.name
            rows.add_metric([name], report["window"]["rows"])
            for input_name, figure in report["inputs"].items():
                if figure["psi"] is not None:
                    by_input.add_metric([name, input_name], figure["psi"])
            if report["predictions"]["psi"] is not None:
                predicted.add_metric([name], report["predictions"]["psi"])
        yield from (by_input, predicted, rows)


class PerformanceCollector:
    """mlrm_performance_* gauges: the live metric from feedback (GET /v1/performance), read at scrape time."""

    def __init__(self, services: Callable[[], list[Service]]) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        live = GaugeMetricFamily(
            "mlrm_performance_rolling", "The config set's metric over predictions scored by feedback in the window.",
            labels=["model", "metric"],
        )  # fmt: skip
        holdout = GaugeMetricFamily(
            "mlrm_performance_holdout", "The version's metric on its holdout when it was trained.",
            labels=["model", "metric"],
        )  # fmt: skip
        rows = GaugeMetricFamily("mlrm_performance_window_rows", "Predictions scored in the window.", labels=["model"])
        for service in self.services():
            report = service.performance_report()
            if not report["available"]:
                continue
            name, metric = service.name, report["metric"]
            live.add_metric([name, metric], report["rolling"])
            holdout.add_metric([name, metric], report["holdout"])
            rows.add_metric([name], report["window"]["rows"])
        yield from (live, holdout, rows)


def render(registry: CollectorRegistry, *extra: Collector) -> bytes:
    """The text of every process's samples (registry's, in one process) and of collectors read now."""
    source: Collector = registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)
    return generate_latest(_Joined(source, *extra))


class _Joined:
    """Several collectors as one, for one scrape."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()
