"""The monitor triggers' decision (training.triggers.drift, .performance): when each fires and when not."""

from __future__ import annotations

from typing import Any

import pytest

from mlrm.config.sections import DriftTrigger, PerformanceTrigger, Triggers
from training_service.triggers import monitored


def triggers(drift: float | None = 0.25, performance: float | None = 0.05) -> Triggers:
    return Triggers(
        new_samples=None, interval=None, drift=DriftTrigger(threshold=drift, min_rows=100),
        performance=PerformanceTrigger(max_drop=performance, min_rows=30),
    )  # fmt: skip


def drift(psi: float | None, rows: int = 500, *, enough: bool = True, version: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "model": {"name": "air", "version": version}, "available": True, "reason": None,
        "window": {"seconds": 3600, "rows": rows, "min_rows": 100, "enough": enough},
        "overall": {"psi": psi, "input": "co2_ppm", "level": "significant"}, **extra,
    }  # fmt: skip


def performance(drop: float | None, rows: int = 60, *, version: int = 3, **extra: Any) -> dict[str, Any]:
    rolling = None if drop is None else 0.9 - drop
    return {
        "model": {"name": "air", "version": version}, "available": True, "reason": None, "metric": "accuracy",
        "holdout": 0.9, "rolling": rolling, "drop": drop, "window": {"rows": rows, "min_rows": 30}, **extra,
    }  # fmt: skip


def test_drift_fires_at_the_threshold_with_the_figures_in_the_reason() -> None:
    reason = monitored(triggers(), drift(0.41, 512), None, 3)
    assert reason == "drift: psi 0.410 on co2_ppm >= 0.25 over 512 rows (version 3)"
    assert monitored(triggers(), drift(0.25), None, 3) is not None


@pytest.mark.parametrize(
    ("report", "why"),
    [
        (drift(0.24), "below the threshold"),
        (drift(0.9, 99), "fewer rows than training.triggers.drift.min_rows"),
        (drift(0.9, enough=False), "the service's own window is not full (serving.drift.min_rows)"),
        (drift(None, 0), "no rows, no psi"),
        (drift(0.9, version=2), "a report about the version that was replaced"),
        (drift(0.9, available=False), "no figures (no reference profile, monitoring off)"),
        (None, "nothing reported yet"),
    ],
)
def test_drift_does_not_fire(report: dict[str, Any] | None, why: str) -> None:
    assert monitored(triggers(), report, None, 3) is None, why


def test_drift_is_off_without_a_threshold() -> None:
    assert monitored(triggers(drift=None), drift(5.0), None, 3) is None


def test_performance_fires_past_the_allowed_drop_with_the_figures_in_the_reason() -> None:
    reason = monitored(triggers(), None, performance(0.2, 80), 3)
    assert reason == (
        "performance: accuracy 0.700 live vs 0.900 on the holdout, a drop of 0.200 > 0.05 over 80 rows (version 3)"
    )


@pytest.mark.parametrize(
    ("report", "why"),
    [
        (performance(0.05), "a drop equal to max_drop is allowed"),
        (performance(-0.02), "better than on the holdout"),
        (performance(0.3, 29), "fewer scored predictions than training.triggers.performance.min_rows"),
        (performance(None, 0), "no feedback matched yet"),
        (performance(0.3, version=4), "a report about another version"),
        (performance(0.3, available=False), "no figures"),
    ],
)
def test_performance_does_not_fire(report: dict[str, Any], why: str) -> None:
    assert monitored(triggers(), None, report, 3) is None, why


def test_performance_is_off_without_an_allowed_drop_and_nothing_fires_without_a_current_version() -> None:
    assert monitored(triggers(performance=None), None, performance(0.5), 3) is None
    assert monitored(triggers(), drift(0.9), performance(0.5), None) is None
