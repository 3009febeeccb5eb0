"""A holdout that never moves: a sample held out once is held out for good.

The gate scores the candidate and the current model on the same holdout.
That is only fair if the current model never trained on it; a fresh random
split of a grown data set would hand the current model rows it has learned
(inflating its score and refusing good candidates). So the split here is a
hash of (training.seed, sample id): the same sample lands on the same side
in every run, and no version this service trains ever sees a held-out row.
(A version trained elsewhere, e.g. `mlrm train` on a CSV, may have.)
"""

from __future__ import annotations

import numpy as np

from mlrm.config.service_config import ServiceConfig
from mlrm.training.trainer import Dataset, split

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _uniform(ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (seed, id) mapped to [0, 1): stable across runs, machines and versions."""
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        x = ids.astype(np.uint64) + np.uint64(seed + 1) * _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def stable_split(config: ServiceConfig, data: Dataset, ids: np.ndarray) -> tuple[Dataset, Dataset, str]:
    """(train, holdout, how): ids[j] is the sample id of data row j."""
    section = config.training
    held = _uniform(ids, section.seed) < section.holdout
    if held.all() or not held.any():
        # Too few samples for the hash to put some on each side: the core's split, this once.
        train, holdout = split(config, data)
        return train, holdout, "random (too few samples for a stable holdout)"
    return data.take(np.flatnonzero(~held)), data.take(np.flatnonzero(held)), "stable by sample id"
