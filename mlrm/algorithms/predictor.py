"""What a compiled predictor is (shared by compiled.py and forest.py): types and the one input check."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# (X) -> (indices into classes_ or regression values or anomaly flags, probabilities or anomaly scores or None),
# or None: ask the estimator.
Output = tuple[np.ndarray, "np.ndarray | None"]
Predictor = Callable[[np.ndarray], "Output | None"]


def finite(X: np.ndarray) -> bool:
    """Whether every value is finite (otherwise the estimator answers, with its own error)."""
    return bool(np.isfinite(X).all())
