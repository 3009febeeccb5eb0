"""Typed views of the config sections that travel far from the loader.

Each is built from the section as the loader resolved it: the schema
(`schema.py`) is the one place that holds defaults, so nothing here repeats
one, and a key the loader did not fill is a KeyError at the first read, not a
silent second default. Values keep the types the schema checked (a `number`
may be an int), so messages that show them read as service.yaml does.
`ServiceConfig` builds these once and caches them (`config.training`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# sequence.order_by's value for "in the order records arrive".
ARRIVAL = "arrival"


@dataclass(frozen=True)
class DriftTrigger:
    """training.triggers.drift: retrain when a service's drift (PSI) reaches threshold (None: off)."""

    threshold: float | None
    min_rows: int


@dataclass(frozen=True)
class PerformanceTrigger:
    """training.triggers.performance: retrain when the live metric drops more than max_drop (None: off)."""

    max_drop: float | None
    min_rows: int


@dataclass(frozen=True)
class Triggers:
    """training.triggers: when the training service retrains on its own (None: never)."""

    new_samples: int | None
    interval: int | None  # seconds
    drift: DriftTrigger
    performance: PerformanceTrigger

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> Triggers:
        drift, performance = section["drift"], section["performance"]
        return cls(
            new_samples=section["new_samples"],
            interval=section["interval"],
            drift=DriftTrigger(threshold=drift["threshold"], min_rows=drift["min_rows"]),
            performance=PerformanceTrigger(max_drop=performance["max_drop"], min_rows=performance["min_rows"]),
        )

    @property
    def monitored(self) -> bool:
        """Whether a trigger watches what the ML services report (drift, performance)."""
        return self.drift.threshold is not None or self.performance.max_drop is not None

    @property
    def enabled(self) -> bool:
        return self.new_samples is not None or self.interval is not None or self.monitored


@dataclass(frozen=True)
class Gate:
    """training.gate: what a candidate must score to replace the current version."""

    min_score: float | None
    max_drop: float
    min_rows: int  # rows neither model trained on, needed to decide

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> Gate:
        return cls(min_score=section["min_score"], max_drop=section["max_drop"], min_rows=section["min_rows"])


@dataclass(frozen=True)
class SampleWindow:
    """training.data.samples: the newest stored samples a job trains on (None: no limit)."""

    last: int | None
    max_age: int | None  # seconds


@dataclass(frozen=True)
class TrainingData:
    """training.data: what a training job learns from besides the stored samples' default (all of them)."""

    files: list[str]  # relative to the config set
    samples: SampleWindow

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> TrainingData:
        samples = section["samples"]
        return cls(files=list(section["files"]), samples=SampleWindow(last=samples["last"], max_age=samples["max_age"]))


@dataclass(frozen=True)
class Retention:
    """training.retention: how many stored samples the training service keeps (None: no limit)."""

    max_age: int | None  # seconds
    max_count: int | None

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> Retention:
        return cls(max_age=section["max_age"], max_count=section["max_count"])

    @property
    def enabled(self) -> bool:
        return self.max_age is not None or self.max_count is not None


@dataclass(frozen=True)
class TrainingSection:
    """The resolved training section."""

    holdout: float  # share of rows (windows) held out for evaluation
    metric: str
    seed: int
    min_rows: int
    keep_versions: int
    triggers: Triggers
    gate: Gate
    retention: Retention
    data: TrainingData

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> TrainingSection:
        return cls(
            holdout=section["holdout"],
            metric=section["metric"],
            seed=section["seed"],
            min_rows=section["min_rows"],
            keep_versions=section["keep_versions"],
            triggers=Triggers.of(section["triggers"]),
            gate=Gate.of(section["gate"]),
            retention=Retention.of(section["retention"]),
            data=TrainingData.of(section["data"]),
        )


@dataclass(frozen=True)
class DriftSection:
    """serving.drift: comparing what the service is asked with the version's reference profile."""

    enabled: bool
    window: int  # seconds
    min_rows: int
    max_rate: int  # rows per second a process counts; above it, a sample

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> DriftSection:
        return cls(
            enabled=section["enabled"], window=section["window"], min_rows=section["min_rows"],
            max_rate=section["max_rate"],
        )  # fmt: skip


@dataclass(frozen=True)
class ServingSection:
    """The resolved serving section."""

    reload_interval: float  # seconds; 0 turns the check for a new version off
    drift: DriftSection

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> ServingSection:
        return cls(reload_interval=section["reload_interval"], drift=DriftSection.of(section["drift"]))


@dataclass(frozen=True)
class LimitsSection:
    """The resolved limits section."""

    max_instances: int
    max_body_bytes: int

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> LimitsSection:
        return cls(max_instances=section["max_instances"], max_body_bytes=section["max_body_bytes"])


@dataclass(frozen=True)
class PreprocessingSection:
    """The resolved preprocessing section."""

    missing: str  # mean | median | zero
    scaling: str  # standard | minmax | none
    one_hot: bool

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> PreprocessingSection:
        return cls(missing=section["missing"], scaling=section["scaling"], one_hot=section["one_hot"])


@dataclass(frozen=True)
class SequenceBuffer:
    """sequence.buffer: the per-stream buffer of single records."""

    file: str  # relative to the config set
    max_streams: int
    idle_seconds: float

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> SequenceBuffer:
        return cls(file=section["file"], max_streams=section["max_streams"], idle_seconds=section["idle_seconds"])


@dataclass(frozen=True)
class SequenceSpec:
    """The resolved sequence section."""

    window: int
    step: int
    inputs: tuple[str, ...]
    order_by: str | None  # None: arrival order
    stream: str | None  # None: one stream
    label: str  # last | majority (classification)
    horizon: int  # regression: records ahead; 0 otherwise
    buffer: SequenceBuffer

    @classmethod
    def of(cls, section: Mapping[str, Any], inputs: tuple[str, ...], task: str) -> SequenceSpec:
        """The spec of a resolved sequence section; inputs: every input, in order."""
        order_by = section["order_by"]
        return cls(
            window=int(section["window"]),
            step=int(section["step"]),
            inputs=tuple(section.get("inputs") or inputs),
            order_by=None if order_by == ARRIVAL else order_by,
            stream=section.get("stream"),
            # label and horizon have no schema default: theirs depends on the task.
            label=section.get("label", "last"),
            horizon=int(section.get("horizon", 1)) if task == "regression" else 0,
            buffer=SequenceBuffer.of(section["buffer"]),
        )

    @property
    def fields(self) -> frozenset[str]:
        """Record fields beside the inputs."""
        return frozenset(f for f in (self.stream, self.order_by) if f)
