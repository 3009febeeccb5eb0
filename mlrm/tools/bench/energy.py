"""Energy of a stretch of work, by codecarbon when the `bench` extra is installed.

codecarbon's offline tracker measures this machine (tracking_mode "machine"):
with Intel RAPL readable it reads the CPU package's energy counters; without,
it estimates CPU power as the CPU model's TDP times its load, and RAM power
from its size. Which method it used is reported beside every figure. Without
codecarbon nothing is estimated here: the report says energy was not measured.
"""

from __future__ import annotations

import logging
from typing import Any

NOT_MEASURED = "energy: not measured (install mlrm[bench] for codecarbon)"


def _tracker_class() -> Any:
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        return None
    return OfflineEmissionsTracker


def available() -> bool:
    return _tracker_class() is not None


def _method(tracker: Any) -> str:
    """What codecarbon's CPU figure came from, in words."""
    for hardware in getattr(tracker, "_hardware", []):
        if type(hardware).__name__ != "CPU":
            continue
        mode = getattr(hardware, "_mode", "")
        tdp = getattr(hardware, "_tdp", None)
        generic = (
            " (a generic TDP: the CPU model is not in codecarbon's table)"
            if getattr(hardware, "_is_generic_tdp", False)
            else ""
        )
        if "rapl" in str(mode):
            return "codecarbon: RAPL energy counters (measured)"
        if mode == "cpu_load":
            return f"codecarbon: TDP estimate, {tdp} W x CPU load{generic}"
        return f"codecarbon: {mode} estimate, TDP {tdp} W{generic}"
    return "codecarbon"


class Meter:
    """`with Meter() as m: ...` then m.result: {"wh", "cpu_wh", "ram_wh", "method"}, or None without codecarbon."""

    def __init__(self, country: str = "DEU") -> None:
        self.country = country
        self.result: dict[str, Any] | None = None
        self._tracker: Any = None

    def __enter__(self) -> Meter:
        cls = _tracker_class()
        if cls is not None:
            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            self._tracker = cls(
                country_iso_code=self.country, save_to_file=False, log_level="error", measure_power_secs=1,
                tracking_mode="machine", allow_multiple_runs=True,
            )  # fmt: skip
            self._tracker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tracker is None:
            return
        self._tracker.stop()
        data = self._tracker.final_emissions_data
        self.result = {
            "wh": round(float(data.energy_consumed) * 1000, 6),  # codecarbon reports kWh
            "cpu_wh": round(float(data.cpu_energy) * 1000, 6),
            "ram_wh": round(float(data.ram_energy) * 1000, 6),
            "seconds": round(float(data.duration), 3),
            "method": _method(self._tracker),
            "scope": "this machine (tracking_mode machine)",
        }
