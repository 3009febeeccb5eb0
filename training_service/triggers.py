"""When a service should retrain, from training.triggers (pure, no I/O).

New samples count from the last training run (promoted or refused), not
from the current version: a refused candidate must not make the very same
trigger fire again at once; it fires again after that many more samples.

The monitor triggers (training.triggers.drift, .performance) read what an ML
service last reported about the version it serves (its GET /v1/drift and
GET /v1/performance answers, pushed to the training service); the
scheduler lets one fire only once its min_rows new samples arrived since the
last training run (docs/drift.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlrm.config.sections import Triggers


def due(triggers: Triggers, new_samples: int, seconds_since_last: float) -> str | None:
    """'new_samples' or 'interval' if a trigger fires now, else None.

    new_samples: samples stored since the last training run read its data.
    seconds_since_last: since that run was created (or the scheduler started).
    """
    threshold = triggers.new_samples
    if threshold is not None and new_samples >= threshold:
        return "new_samples"
    interval = triggers.interval
    if interval is not None and new_samples > 0 and seconds_since_last >= interval:
        return "interval"
    return None


def monitored(
    triggers: Triggers, drift: Mapping[str, Any] | None, performance: Mapping[str, Any] | None, version: int | None
) -> str | None:
    """The reason a monitor trigger fires now ("drift: ...", "performance: ..."), else None.

    drift is an ML service's GET /v1/drift answer, performance its GET /v1/performance answer, as it last
    reported them; version is the current version. A report about another version never fires: right after
    a swap it still describes the model that was replaced.
    """
    if triggers.drift.threshold is not None and _about(drift, version):
        assert drift is not None
        window, overall = drift.get("window") or {}, drift.get("overall") or {}
        rows, psi = int(window.get("rows") or 0), overall.get("psi")
        enough = bool(window.get("enough")) and rows >= triggers.drift.min_rows
        if enough and isinstance(psi, (int, float)) and psi >= triggers.drift.threshold:
            return (
                f"drift: psi {psi:.3f} on {overall.get('input')} >= {triggers.drift.threshold} "
                f"over {rows} rows (version {version})"
            )
    if triggers.performance.max_drop is not None and _about(performance, version):
        assert performance is not None
        window = performance.get("window") or {}
        rows, drop = int(window.get("rows") or 0), performance.get("drop")
        enough = rows >= triggers.performance.min_rows
        if enough and isinstance(drop, (int, float)) and drop > triggers.performance.max_drop:
            metric, live, holdout = performance.get("metric"), performance.get("rolling"), performance.get("holdout")
            return (
                f"performance: {metric} {live:.3f} live vs {holdout:.3f} on the holdout, a drop of {drop:.3f} "
                f"> {triggers.performance.max_drop} over {rows} rows (version {version})"
            )
    return None


def _about(report: Mapping[str, Any] | None, version: int | None) -> bool:
    """Whether a monitor report gives figures about this version."""
    if not report or not report.get("available") or version is None:
        return False
    model = report.get("model") or {}
    return model.get("version") == version
