"""A holdout that never moves: a sample held out once is held out for good.

The gate scores the candidate and the current model on the same holdout.
That is only fair if the current model never trained on it; a fresh random
split of a grown data set would hand the current model rows it has learned
(inflating its score and refusing good candidates). So the split here is a
hash of (training.seed, sample id): the same sample lands on the same side
in every run, and no version this service trains ever sees a held-out row.
Rows of training.data.files take negative ids from their file's place in
the list and their row (file i, row k: -((i + 1) * 2**32 + k)), so they are
split by the same rule.

The gate compares candidate and current model only on held-out rows that
neither trained on (`unseen`): all of them when the current version was
trained by this service under the same rule (same seed, share and base
files, recorded as data.holdout_rule in its parameters.yaml); otherwise (a
version from `mlrm train` on a CSV, or a changed rule) only the stored
samples received after the current version was made, which it cannot have
seen. With fewer than training.gate.min_rows such rows the gate keeps the
current version and says so (gate.decide).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlrm.config.service_config import ServiceConfig
from mlrm.training.trainer import Dataset, split

RULE = "splitmix64(training.seed, sample id) < training.holdout"
FILE_ID_SPAN = 2**32
STABLE = "stable by sample id"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _uniform(ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (seed, id) mapped to [0, 1): stable across runs, machines and versions."""
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        x = ids.astype(np.uint64) + np.uint64(seed + 1) * _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def file_ids(index: int, rows: int) -> np.ndarray:
    """The ids of the rows of the index-th file of training.data.files (negative: never a sample's)."""
    return -((index + 1) * FILE_ID_SPAN + np.arange(rows, dtype=np.int64))


def rule(config: ServiceConfig, files: dict[str, str]) -> dict[str, Any]:
    """What decides which rows are held out, as recorded in parameters.yaml (files: name -> sha256)."""
    return {"by": RULE, "seed": config.training.seed, "share": config.training.holdout, "files": files}


def stable_split(config: ServiceConfig, data: Dataset, ids: np.ndarray) -> tuple[Dataset, Dataset, str]:
    """(train, holdout, how): ids[j] is the sample id of data row j."""
    train, holdout, how, _ = split_ids(config, data, ids)
    return train, holdout, how


def split_ids(config: ServiceConfig, data: Dataset, ids: np.ndarray) -> tuple[Dataset, Dataset, str, np.ndarray]:
    """(train, holdout, how, the ids of the holdout's rows); how is "stable by sample id" when the rule held."""
    section = config.training
    held = _uniform(ids, section.seed) < section.holdout
    if held.all() or not held.any():
        # Too few samples for the hash to put some on each side: the core's split, this once.
        train, holdout = split(config, data)
        return train, holdout, "random (too few samples for a stable holdout)", np.empty(0, dtype=np.int64)
    return data.take(np.flatnonzero(~held)), data.take(np.flatnonzero(held)), STABLE, ids[held]


def unseen(held_ids: np.ndarray, same_rule: bool, first_new_id: int) -> np.ndarray:
    """Which held-out rows the current version cannot have trained on (see the module's docstring)."""
    if same_rule:
        return np.ones(len(held_ids), dtype=bool)
    return held_ids >= max(first_new_id, 1)
