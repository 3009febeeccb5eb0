"""Prometheus metrics of one ML service, correct under several gunicorn workers.

When PROMETHEUS_MULTIPROC_DIR is set (mlrm serve sets it), every worker writes
its samples there and /metrics adds them up; without it (tests, one process)
the app's own registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metrics one app records."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mlrm_requests", "HTTP requests.", ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram(
            "mlrm_request_duration_seconds", "Request latency.", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
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

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
