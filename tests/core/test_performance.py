"""The live metric from feedback: numpy definitions equal to the trainer's scikit-learn ones, and the
log that pairs predictions with the true values by id across processes (one SQLite file)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as m

from mlrm.core.performance import drop, metric_of
from mlrm.storage.performance_log import PerformanceLog


@pytest.mark.parametrize(
    ("metric", "sklearn"),
    [
        ("accuracy", m.accuracy_score),
        ("f1_macro", lambda y, p: m.f1_score(y, p, average="macro", zero_division=0)),
        ("f1_weighted", lambda y, p: m.f1_score(y, p, average="weighted", zero_division=0)),
        ("precision_macro", lambda y, p: m.precision_score(y, p, average="macro", zero_division=0)),
        ("recall_macro", lambda y, p: m.recall_score(y, p, average="macro", zero_division=0)),
        ("balanced_accuracy", m.balanced_accuracy_score),
    ],
)
def test_classification_metrics_equal_scikit_learn(metric: str, sklearn: object) -> None:
    rng = np.random.default_rng(7)
    y = rng.choice(["ok", "worn", "broken"], 200, p=[0.6, 0.3, 0.1])
    p = np.where(rng.random(200) < 0.7, y, rng.choice(["ok", "worn", "broken"], 200))
    got = metric_of(metric, "classification", list(zip(p.tolist(), y.tolist(), strict=True)))
    assert got == pytest.approx(sklearn(y, p))  # type: ignore[operator]


def test_regression_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(800, 150, 100)
    p = y + rng.normal(20, 40, 100)
    pairs = list(zip(p.tolist(), y.tolist(), strict=True))
    assert metric_of("mae", "regression", pairs) == pytest.approx(m.mean_absolute_error(y, p))
    assert metric_of("rmse", "regression", pairs) == pytest.approx(math.sqrt(m.mean_squared_error(y, p)))
    assert metric_of("r2", "regression", pairs) == pytest.approx(m.r2_score(y, p))
    assert metric_of("mae", "regression", []) is None
    assert drop("mae", 28.0, 61.0) == pytest.approx(33.0) and drop("f1_macro", 0.95, 0.9) == pytest.approx(0.05)


def test_the_log_pairs_ids_once_by_version_and_stays_bounded(tmp_path: Path) -> None:
    log = PerformanceLog(tmp_path / "perf.sqlite", keep=300)
    log.remember(1, ["a", "b", "c"], ["ok", "worn", None])  # a buffered record's null answer is not kept
    other = PerformanceLog(tmp_path / "perf.sqlite")  # another worker, the same file
    assert other.score({"a": "ok", "b": "ok", "c": "ok", "z": "ok"}) == [(1, "ok", "ok"), (1, "worn", "ok")]
    assert other.score({"a": "worn"}) == [(1, "ok", "worn")]  # a second truth replaces the first
    assert sorted(log.scored(1, 0.0)) == [("ok", "worn"), ("worn", "ok")]
    assert log.scored(2, 0.0) == [] and log.scored(1, 1e12) == []
    for n in range(4):
        log.remember(2, [f"id{n}-{i}" for i in range(200)], list(range(200)))
    conn = log._connect()
    try:
        (kept,) = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()
    finally:
        conn.close()
    assert kept <= 300 + 256
