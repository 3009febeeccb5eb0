"""Typed views of config sections that travel far from the loader.

`ServiceConfig.section(name)` gives the resolved dict (defaults filled); a section
read in many places gets a small frozen dataclass here instead, so what is in it
is said once, with types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlrm.config.service_config import ServiceConfig

# sequence.order_by's value for "in the order records arrive".
ARRIVAL = "arrival"


@dataclass(frozen=True)
class SequenceSpec:
    """The resolved sequence section."""

    window: int
    step: int
    inputs: tuple[str, ...]
    order_by: str | None  # None: arrival order
    stream: str | None  # None: one stream
    label: str  # last | majority (classification)
    horizon: int  # regression: records ahead; 0 otherwise
    buffer: dict[str, Any]

    @classmethod
    def of(cls, config: ServiceConfig) -> SequenceSpec | None:
        """The spec of a config set, or None when it has no sequence section."""
        seq = config.raw.get("sequence")
        if not seq:
            return None
        order_by = seq.get("order_by", ARRIVAL)
        return cls(
            window=int(seq["window"]),
            step=int(seq.get("step", 1)),
            inputs=tuple(seq.get("inputs") or [f.name for f in config.inputs]),
            order_by=None if order_by == ARRIVAL else order_by,
            stream=seq.get("stream"),
            label=seq.get("label", "last"),
            horizon=int(seq.get("horizon", 1)) if config.task == "regression" else 0,
            buffer=dict(seq.get("buffer") or {}),
        )

    @property
    def fields(self) -> frozenset[str]:
        """Record fields beside the inputs."""
        return frozenset(f for f in (self.stream, self.order_by) if f)
