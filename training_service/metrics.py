"""Prometheus metrics of the training service (GET /metrics), correct across its processes.

Counters and histograms are recorded where things happen, in whichever
process that is: requests in the API workers, ingest there and in the MQTT
subscriber, job outcomes, durations and gate decisions in the job processes.
`mlrm training-service` sets PROMETHEUS_MULTIPROC_DIR before any of them
starts, so /metrics adds up every process's files, the finished ones' too.

What is a state rather than an event (jobs queued or running, samples not yet
trained on) is read from the store when /metrics is scraped (StoreCollector),
through the Store interface, so it is right whichever process changed it and
whichever backend holds it. Names and meanings: docs/metrics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from mlrm.rest.metrics import CONTENT_TYPE, LATENCY_BUCKETS, render

if TYPE_CHECKING:
    from mlrm.config import ServiceConfig
    from training_service.services import ConfigRoot
    from training_service.store import Store

# The sample id a config set's current version was trained through (jobs.current_watermark).
Watermark = Callable[["ServiceConfig"], int]

log = logging.getLogger("training_service.metrics")
# A job lasts from a second to hours.
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


class TrainingMetrics:
    """The counters and histograms one process of the training service records."""

    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mlrm_training_requests", "HTTP requests.", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "mlrm_training_request_duration_seconds", "Request latency.", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.samples = Counter(
            "mlrm_training_samples", "Samples received (REST and MQTT), by outcome: accepted or rejected.",
            ["service", "outcome"], registry=r,
        )  # fmt: skip
        self.ingest = Histogram(
            "mlrm_training_ingest_duration_seconds", "Time to check and commit one batch of samples.", ["service"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.jobs_finished = Counter(
            "mlrm_training_jobs_finished", "Training jobs that ended, by state: succeeded or failed.",
            ["service", "state"], registry=r,
        )  # fmt: skip
        self.job_duration = Histogram(
            "mlrm_training_job_duration_seconds", "Run time of a finished job, by state.", ["service", "state"],
            buckets=JOB_BUCKETS, registry=r,
        )  # fmt: skip
        self.gate = Counter(
            "mlrm_training_gate_decisions", "The promotion gate's verdicts: promoted or refused.",
            ["service", "decision"], registry=r,
        )  # fmt: skip

    def ingested(self, service: str, accepted: int, rejected: int, seconds: float) -> None:
        """One batch checked (and, if any was accepted, committed)."""
        self.samples.labels(service, "accepted").inc(accepted)
        self.samples.labels(service, "rejected").inc(rejected)
        self.ingest.labels(service).observe(seconds)

    def job_ended(self, service: str, state: str, seconds: float, promoted: bool | None) -> None:
        """A job finished (promoted: the gate's verdict, None when it never got that far)."""
        self.jobs_finished.labels(service, state).inc()
        self.job_duration.labels(service, state).observe(seconds)
        if promoted is not None:
            self.gate.labels(service, "promoted" if promoted else "refused").inc()

    def render(self, store: Store, services: ConfigRoot, watermark: Watermark) -> bytes:
        return render(self.registry, StoreCollector(store, services, watermark))


class StoreCollector:
    """Gauges read from the store at scrape time: true across processes and backends."""

    def __init__(self, store: Store, services: ConfigRoot, watermark: Watermark) -> None:
        self.store, self.services, self.watermark = store, services, watermark

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("mlrm_training_jobs", "Jobs queued or running now.", labels=["service", "state"])
        pending = GaugeMetricFamily(
            "mlrm_training_samples_pending", "Samples stored since the last training run read data.", labels=["service"]
        )
        up = GaugeMetricFamily("mlrm_training_store_up", "1 when the store answered this scrape's questions.")
        try:
            for name in self.services.names():
                self._add(name, jobs, pending)
        except Exception as exc:  # noqa: BLE001 (a store that is down must not take the counters with it)
            log.warning("/metrics: the store did not answer, its gauges are left out: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield from (up, jobs, pending)

    def _add(self, name: str, jobs: GaugeMetricFamily, pending: GaugeMetricFamily) -> None:
        active = self.store.active_job(name)
        for state in ("queued", "running"):
            jobs.add_metric([name, state], 1.0 if active is not None and active.state == state else 0.0)
        last = self.store.last_training(name)
        if last is not None and last.samples_through is not None:
            through = last.samples_through
        else:
            through = self.watermark(self.services.get(name))
        pending.add_metric([name], float(self.store.count_since(name, through)))
