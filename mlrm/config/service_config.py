"""Typed view of a validated config set, with every default filled in."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrm.config.schema import ANOMALY_METRICS


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
        """A top-level section with defaults filled ({} if absent)."""
        value = self.raw.get(key) or {}
        return value if isinstance(value, dict) else {}

    @property
    def labels(self) -> tuple[Any, ...]:
        return self.target.labels if self.target else ()

    @property
    def metric(self) -> str:
        return str(self.section("training")["metric"])

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
