"""Energy of a stretch of work, by codecarbon when the `bench` extra is installed.

codecarbon's offline tracker measures this machine (tracking_mode "machine"):
with Intel RAPL readable it reads the CPU package's energy counters; without,
it estimates CPU power from the CPU model's TDP and the machine's CPU load,
and RAM power from its size. Which method it used is reported beside every figure. Without
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
    """What codecarbon's figures came from, in words (its CPU object's mode, read after the run)."""
    ram = "RAM: codecarbon's estimate from the memory size"
    for hardware in getattr(tracker, "_hardware", []):
        if type(hardware).__name__ != "CPU":
            continue
        mode, tdp = str(getattr(hardware, "_mode", "")), getattr(hardware, "_tdp", None)
        generic = (
            " (a generic TDP: the CPU model is not in codecarbon's table)"
            if getattr(hardware, "_is_generic_tdp", False)
            else ""
        )
        if "rapl" in mode:
            return f"codecarbon: CPU from the RAPL energy counters (measured); {ram}"
        if mode == "cpu_load":
            return (
                f"codecarbon: CPU estimated from its TDP ({tdp} W{generic}) and load, TDP x (0.1 + 0.9 x load^3); {ram}"
            )
        return f"codecarbon: CPU by its {mode!r} method, TDP {tdp} W{generic}; {ram}"
    return f"codecarbon (no CPU found); {ram}"


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
