"""Input and prediction drift while serving: what a service is asked, against its version's reference profile.

The statistic is the population stability index (PSI) on the reference's bins
(mlrm.core.profile): sum over bins of (q - p) * ln(q / p), p the reference's
share of a bin and q the window's, each smoothed by half a count per bin so an
empty bin stays finite. Why PSI: it is the symmetric Kullback-Leibler
divergence of the two binned distributions, one figure per input that reads
the same for numbers and categories, with thresholds in wide use (0.1
moderate, 0.25 significant); and it needs only counts, which add up across
gunicorn workers, the MQTT bridge and time buckets. A test's p-value (KS,
chi-square) would need the raw values or would call any tiny shift
significant once the window is large. See docs/drift.md.

The predict path pays for one deque append per batch (`Window.observe`, the
Model's observer). Rows are binned in one numpy pass per 256 batches (or 8192
rows), every second, or when a figure is asked for, and a daemon thread writes the process's counts
(mlrm.storage.drift_counts) at most once a second. The window slides in
BUCKETS steps of window/BUCKETS seconds each.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlrm.config.service_config import ServiceConfig
from mlrm.core.profile import Binner
from mlrm.storage.drift_counts import DriftCounts

if TYPE_CHECKING:
    from mlrm.algorithms import Prediction
    from mlrm.core.model import Model

log = logging.getLogger("mlrm.core.drift")

STATISTIC = "psi"
MODERATE, SIGNIFICANT = 0.1, 0.25
BUCKETS = 12
DRAIN_BATCHES, DRAIN_ROWS = 256, 8192  # held before they are binned on the predict path
FLUSH_S = 1.0
RATE_S = 0.25  # the rate that sets the sampling stride is measured over at least this long
# Bumped in a forked child (a gunicorn worker): its flusher thread did not survive the fork.
_forks = [0]
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


def directory() -> Path | None:
    """Where processes share their counts: beside the workers' Prometheus files that `mlrm serve` makes
    (None: this process alone, e.g. a test's app)."""
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(base) / "drift" if base else None


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    """PSI of window counts against reference counts over the same bins, half a count added to each bin."""
    p = (reference + 0.5) / (reference.sum() + 0.5 * len(reference))
    q = (window + 0.5) / (window.sum() + 0.5 * len(window))
    return float(np.sum((q - p) * np.log(q / p)))


def level(value: float | None, enough: bool) -> str | None:
    if value is None:
        return None
    if not enough:
        return "insufficient"
    return "significant" if value >= SIGNIFICANT else "moderate" if value >= MODERATE else "none"


class Window:
    """The counts of one version in this process: pending batches, then time buckets.

    Counters touched on the predict path are plain ints, updated without a lock: a lost update under
    gevent or a thread switch miscounts a sample's bookkeeping by one batch, never the counts binned.
    """

    def __init__(
        self, binner: Binner, counts: DriftCounts | None, bucket_s: float, clock: Callable[[], float], max_rate: int
    ) -> None:
        self.binner, self.counts, self.bucket_s, self.clock = binner, counts, bucket_s, clock
        self.max_rate = max_rate  # rows binned per second at most: above it, every k-th batch, k set each second
        self.pending: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self.held = 0  # rows (or windows) queued since the last drain
        self.calls = 0
        self.stride = 1  # every stride-th batch is binned
        self.skipped = 0  # values (rows x width) predicted but not binned since the last drain
        self.seen = 0  # rows predicted since the stride was last set
        self.since = clock()
        self.buckets: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()  # taken by drain() only, never per request
        self.dirty = False
        self.first: Callable[[], None] | None = None  # called on the first batch binned in a process

    def observe(self, raw: np.ndarray, prediction: Prediction) -> None:
        """The Model's observer: called on the predict path, so it only counts or queues the batch."""
        self.calls += 1
        if self.calls % self.stride:
            self.skipped += raw.size  # an attribute: cheaper than the rows of a window
            return
        self.pending.append((raw, prediction.values))
        self.held += len(raw)
        if self.held >= DRAIN_ROWS or len(self.pending) >= DRAIN_BATCHES:
            self.drain()
        if self.first is not None:
            self.first()

    def bucket(self) -> int:
        return int(self.clock() // self.bucket_s)

    def drain(self) -> None:
        """Bin every queued batch into the current bucket (appends may go on meanwhile: a deque is thread-safe)."""
        with self.lock:
            self.held = 0
            skipped = self.skipped
            self.skipped -= skipped
            skipped //= self.binner.width
            batches = []
            while self.pending:
                batches.append(self.pending.popleft())
            self._sample(skipped + sum(raw.size for raw, _ in batches) // self.binner.width)
            if not batches:
                if skipped:
                    self._add(np.zeros(self.binner.slots, dtype=np.int64), skipped)
                return
            # One C call each, whatever the number of batches (rows: n x width, windows: n x window x width).
            raws = np.concatenate([raw for raw, _ in batches])
            rows = raws.reshape(-1, raws.shape[-1])
            predictions = np.concatenate([values for _, values in batches])
            self._add(self.binner.count(rows, predictions), skipped)

    def _add(self, counts: np.ndarray, skipped: int) -> None:
        counts[self.binner.seen_slot] += skipped
        now = self.bucket()
        held = self.buckets.get(now)
        self.buckets[now] = counts if held is None else held + counts
        for old in [b for b in self.buckets if b <= now - BUCKETS]:
            del self.buckets[old]
        self.dirty = True

    def _sample(self, rows: int) -> None:
        """Set the stride from the rows predicted over the last RATE_S or more."""
        self.seen += rows
        now = self.clock()
        if now - self.since >= RATE_S:
            rate = self.seen / (now - self.since)
            self.stride = max(1, math.ceil(rate / self.max_rate))
            self.seen, self.since = 0, now

    def flush(self) -> None:
        """Drain and, if anything changed, write this process's counts for other processes to read."""
        self.drain()
        if self.dirty and self.counts is not None:
            self.dirty = False
            try:
                self.counts.write(dict(self.buckets))
            except OSError as exc:
                log.warning("could not write drift counts to %s: %s", self.counts.file, exc)

    def total(self) -> np.ndarray:
        """The window's counts: this process's and (with a shared folder) every other's."""
        self.flush()
        first = self.bucket() - BUCKETS + 1
        if self.counts is None:
            out = np.zeros(self.binner.slots, dtype=np.int64)
            for bucket, counts in self.buckets.items():
                if bucket >= first:
                    out += counts
            return out
        return self.counts.total(self.binner.slots, first, stale_after_s=2 * BUCKETS * self.bucket_s)


class DriftMonitor:
    """Drift of one config set in this process: attached to each model version as it starts serving."""

    def __init__(
        self, config: ServiceConfig, folder: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        section = config.serving.drift
        self.config, self.name = config, config.name
        self.seconds, self.min_rows, self.max_rate = int(section.window), int(section.min_rows), int(section.max_rate)
        self.folder = folder if folder is not None else directory()
        self.clock = clock
        self.window: Window | None = None
        self.model: Model | None = None
        self._forks = -1
        self._token = ""

    def attach(self, model: Model) -> None:
        """Count what `model` is asked from now on (a version without a profile is not counted)."""
        old = self.window
        if old is not None:
            old.flush()
        self.model = model
        self.window = None
        if model.profile is None or model.version is None:
            return
        counts = None if self.folder is None else DriftCounts(self.folder, self.name, model.version, self._own_token())
        window = Window(Binner(self.config, model.profile), counts, self.seconds / BUCKETS, self.clock, self.max_rate)
        if self.folder is not None:
            window.first = self._first
        self.window = window
        model.observer = window.observe

    def _first(self) -> None:
        """On a binned batch: start this process's flusher if it has none (a forked worker does not)."""
        if self._forks != _forks[0]:
            self._start_flusher()

    def _own_token(self) -> str:
        if self._forks != _forks[0] or not self._token:
            self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self._token

    def _start_flusher(self) -> None:
        """One daemon thread per process (started in the forked worker on its first prediction)."""
        self._forks = _forks[0]
        if self.window is not None and self.window.counts is not None:
            # A token of this process: a file inherited across a fork would be written by two processes.
            assert self.model is not None and self.model.version is not None and self.folder is not None
            self._token = ""
            self.window.counts = DriftCounts(self.folder, self.name, self.model.version, self._own_token())
        threading.Thread(target=self._flush_forever, name=f"mlrm-drift-{self.name}", daemon=True).start()

    def _flush_forever(self) -> None:
        forks = self._forks
        while forks == _forks[0]:
            time.sleep(FLUSH_S)
            window = self.window
            if window is not None:
                window.flush()

    def report(self) -> dict[str, Any]:
        """The GET /v1/drift body (docs/drift.md)."""
        model = self.model
        base: dict[str, Any] = {
            "model": {"name": self.name, "version": None if model is None else model.version},
            "available": False, "reason": None, "statistic": STATISTIC,
            "thresholds": {"moderate": MODERATE, "significant": SIGNIFICANT},
        }  # fmt: skip
        window = self.window
        if model is None:
            return {**base, "reason": f"'{self.name}' has no model loaded yet; train it"}
        if window is None or model.profile is None:
            return {**base, "reason": f"version {model.version} has no reference profile; retrain to record one"}
        totals = window.total()
        return {**base, "available": True, **figures(window.binner, totals, model, self.seconds, self.min_rows)}


def figures(binner: Binner, totals: np.ndarray, model: Model, seconds: int, min_rows: int) -> dict[str, Any]:
    """Window, reference and PSI per input, of the predictions and overall, from summed slot counts."""
    rows, seen = int(totals[binner.rows_slot]), int(totals[binner.seen_slot])
    enough = rows >= min_rows
    inputs: dict[str, Any] = {}
    for i, name in enumerate(binner.names):
        reference = binner.reference[i]
        counts = totals[binner.offsets[i] : binner.offsets[i] + len(reference)]
        value = psi(reference, counts) if rows else None
        inputs[name] = {"psi": _round(value), "level": level(value, enough), "missing": int(counts[-1])}
    k = len(binner.prediction_reference)
    predicted = totals[binner.prediction_offset : binner.prediction_offset + k]
    value = psi(binner.prediction_reference, predicted) if predicted.sum() else None
    worst = max(inputs, key=lambda n: inputs[n]["psi"]) if rows else None
    top = None if worst is None else inputs[worst]["psi"]
    profile = model.profile or {}
    return {
        "window": {"seconds": seconds, "rows": rows, "predicted": seen, "min_rows": min_rows, "enough": enough},
        "reference": {
            "version": model.version,
            "rows": profile.get("rows"),
            "created_at": model.parameters.get("created_at"),
        },  # fmt: skip
        "overall": {"psi": top, "input": worst, "level": level(top, enough)},
        "inputs": inputs,
        "predictions": {"psi": _round(value), "level": level(value, enough)},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
