"""When a service should retrain, from training.triggers (pure, no I/O).

New samples count from the last training run (promoted or refused), not
from the current version: a refused candidate must not make the very same
trigger fire again at once; it fires again after that many more samples.
"""

from __future__ import annotations

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
