"""The promotion gate: does a candidate replace the current model?

Both are scored on the same holdout with the config set's metric.
training.gate.min_score is an absolute floor; training.gate.max_drop is how
much worse than the current model the candidate may be (0 = never worse).
The holdout holds only rows neither model trained on (holdout.unseen); with
fewer than training.gate.min_rows of them a comparison would be noise, so
the current version stays and the verdict says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlrm.config.schema import LOWER_IS_BETTER
from mlrm.config.sections import Gate
from mlrm.training.trainer import better

# Scores equal up to float noise count as equal.
EPSILON = 1e-12


@dataclass(frozen=True)
class Decision:
    """The gate's verdict, kept with the candidate whether it was promoted or not."""

    promote: bool
    reason: str
    metric: str
    candidate: float
    current: float | None
    min_score: float | None
    max_drop: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    metric: str, gate: Gate, candidate: dict[str, float], current: dict[str, float] | None, rows: int | None = None
) -> Decision:
    """Apply training.gate to the candidate's and the current model's metrics on one holdout.

    rows: how many rows that holdout has when there is a current version to compare with (None: none is).
    """
    score = float(candidate[metric])
    min_score = gate.min_score
    max_drop = float(gate.max_drop)
    now = None if current is None else float(current[metric])
    lower = metric in LOWER_IS_BETTER

    def verdict(promote: bool, reason: str) -> Decision:
        return Decision(promote, reason, metric, score, now, min_score, max_drop)

    if min_score is not None and better(metric, score, float(min_score)) < -EPSILON:
        bound = "above" if lower else "below"
        return verdict(False, f"{metric} {score:.4f} is {bound} training.gate.min_score {min_score}")
    if rows is not None and rows < gate.min_rows:
        return verdict(False, (
            f"too few unseen rows ({rows} < training.gate.min_rows {gate.min_rows}) to compare with the current "
            "version; kept current"
        ))  # fmt: skip
    if now is None:
        return verdict(True, f"no current model to compare with; {metric} {score:.4f} passes the gate")
    gain = better(metric, score, now)
    if gain < -max_drop - EPSILON:
        return verdict(False, (
            f"{metric} would drop by {-gain:.4f} ({now:.4f} -> {score:.4f} on the same holdout); "
            f"training.gate.max_drop is {max_drop}"
        ))  # fmt: skip
    if gain > EPSILON:
        return verdict(True, f"{metric} improves by {gain:.4f} ({now:.4f} -> {score:.4f} on the same holdout)")
    return verdict(
        True, f"{metric} {score:.4f} vs {now:.4f} on the same holdout: within training.gate.max_drop {max_drop}"
    )
