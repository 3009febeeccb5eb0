"""The one interface every algorithm adapter implements.

An adapter works on a dense float matrix that preprocessing has already made
(rows x features). Classification targets arrive as integer label codes
0..k-1; the adapter never sees label strings. Parameters go out and come back
in as named byte blobs; the version store writes, hashes and verifies them,
so an adapter never touches the file system.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

Task = Literal["classification", "regression", "anomaly"]

# progress(stage, fraction or None, message): a long fit reports here.
Progress = Callable[[str, "float | None", str], None]


def no_progress(stage: str, fraction: float | None, message: str) -> None:
    """Progress sink that drops every report."""


@dataclass
class Prediction:
    """What an adapter returns for n rows.

    values: label codes (classification), floats (regression), or 1/0 flags
    (anomaly: 1 means anomalous). probabilities: n x k over ALL k label codes
    (columns in code order), or None. scores: anomaly scores (higher = more
    anomalous), or None.
    """

    values: np.ndarray
    probabilities: np.ndarray | None = None
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter an adapter accepts: name, default and a check."""

    name: str
    default: Any
    description: str = ""
    # JSON-Schema fragment for the value, used by `mlrm schema` and validate.
    schema: dict[str, Any] = field(default_factory=dict)


class Algorithm(Protocol):
    """A registry entry. Constructed with hyperparameters only (no fitting).

    Class attributes:
      name: the short registry name used in YAML.
      task: what the algorithm does.
      requires: optional extra needed ("torch") or None.
    """

    name: ClassVar[str]
    task: ClassVar[Task]
    requires: ClassVar[str | None]

    @classmethod
    def hyperparameters(cls) -> dict[str, Hyperparameter]:
        """Every accepted hyperparameter by name."""
        ...

    @classmethod
    def check(cls, params: dict[str, Any]) -> list[tuple[str, str]]:
        """Problems with params before any training: [(name, message)]."""
        ...

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None,
        *,
        n_classes: int | None = None,
        progress: Progress = no_progress,
        seed: int = 0,
    ) -> Algorithm:
        """Learn from X (n x d float64) and y (codes or floats); returns self."""
        ...

    def predict(self, X: np.ndarray) -> Prediction:
        """Predict for X (n x d float64)."""
        ...

    def dump(self) -> dict[str, bytes]:
        """Learned parameters as {file name: bytes}."""
        ...

    def load(self, files: dict[str, bytes]) -> None:
        """Restore learned parameters from dump()'s output (digests already checked)."""
        ...
