"""Typed view of a validated config set, with every default filled in."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlrm.config.schema import ANOMALY_METRICS
from mlrm.config.sections import LimitsSection, PreprocessingSection, SequenceSpec, ServingSection, TrainingSection


@dataclass(frozen=True)
class Feature:
    """One input feature."""

    name: str
    type: str
    required: bool
    default: Any = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class Target:
    """What is predicted: classification (with labels) or regression."""

    name: str
    kind: str
    labels: tuple[Any, ...] = ()
    unit: str | None = None


@dataclass(frozen=True)
class ServiceConfig:
    """A validated config set: `raw` is service.yaml with defaults filled."""

    path: Path
    raw: dict[str, Any]
    inputs: tuple[Feature, ...]
    target: Target | None
    task: str
    algorithm: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def description(self) -> str:
        return str(self.raw.get("description", ""))

    @property
    def learned_dir(self) -> Path:
        return self.path / "learned"

    def section(self, key: str) -> dict[str, Any]:
        """A top-level section as a dict, defaults filled ({} if absent).

        For showing or recording the resolved config; code that reads a value
        uses the typed section (`training`, `serving`, `limits`, ...).
        """
        value = self.raw.get(key) or {}
        return value if isinstance(value, dict) else {}

    # Typed sections, built on first use: the loader has filled every default by then,
    # and a ServiceConfig is not changed after loading.
    @cached_property
    def training(self) -> TrainingSection:
        return TrainingSection.of(self.section("training"))

    @cached_property
    def serving(self) -> ServingSection:
        return ServingSection.of(self.section("serving"))

    @cached_property
    def limits(self) -> LimitsSection:
        return LimitsSection.of(self.section("limits"))

    @cached_property
    def preprocessing(self) -> PreprocessingSection:
        return PreprocessingSection.of(self.section("preprocessing"))

    @cached_property
    def sequence(self) -> SequenceSpec | None:
        """The sequence section, or None when the config set has none."""
        section = self.section("sequence")
        return SequenceSpec.of(section, tuple(f.name for f in self.inputs), self.task) if section else None

    @property
    def labels(self) -> tuple[Any, ...]:
        return self.target.labels if self.target else ()

    @property
    def metric(self) -> str:
        return self.training.metric

    def resolved(self) -> dict[str, Any]:
        """The resolved config, as recorded beside learned parameters."""
        return copy.deepcopy(self.raw)

    def signature(self) -> dict[str, Any]:
        """The parts learned state depends on: a change here needs retraining."""
        raw = self.raw
        sequence = raw.get("sequence")
        return {
            "inputs": raw["inputs"],
            "target": raw.get("target"),
            "algorithm": raw["algorithm"]["name"],
            "preprocessing": raw.get("preprocessing"),
            # The buffer is serving only: changing it needs no retraining.
            "sequence": {k: v for k, v in sequence.items() if k != "buffer"} if sequence else None,
        }


def default_metric(task: str) -> str:
    return {"classification": "f1_macro", "regression": "rmse"}.get(task, ANOMALY_METRICS[0])
