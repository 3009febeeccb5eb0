"""A pump motor on a shop floor, simulated: readings of a healthy machine and
of three faults, for the anomaly, classification, regression and sequence
scenarios and templates.

A 7.5 kW four-pole motor runs near 1480 rpm; load (30-95 %) sets current,
slip and heat. Vibration velocity follows ISO 10816 (class II: below
2.8 mm/s is fine). Faults change the readings the way they do on real
machines:

- imbalance: vibration rises two to four times, still sinusoidal (peak/rms ~1.4);
- bearing-wear: impacts, so the peak rises far more than the rms, and the bearing runs hot;
- overheating (a blocked fan or overload): temperature and current climb.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONDITIONS = ["normal", "imbalance", "bearing-wear", "overheating"]
SENSOR_FEATURES = ["rpm", "load_pct", "motor_current_a", "vibration_rms_mm_s", "vibration_peak_mm_s", "bearing_temp_c"]
WINDOW_FEATURES = [
    "vibration_mean_mm_s", "vibration_std_mm_s", "vibration_max_mm_s", "vibration_crest",
    "temp_mean_c", "temp_slope_c_min", "current_mean_a",
]  # fmt: skip
WINDOW = 30  # one reading a second: a window is half a minute


class Machine:
    """One motor: reading(condition) gives the next set of sensor values."""

    def __init__(self, rng: np.random.Generator, ambient_c: float = 24.0) -> None:
        self.rng = rng
        self.ambient = ambient_c
        self.load = float(rng.uniform(40, 80))

    def reading(self, condition: str = "normal") -> dict[str, Any]:
        """The next reading (load drifts slowly between 30 and 95 %)."""
        rng = self.rng
        self.load = float(np.clip(self.load + rng.normal(0, 3), 30, 95))
        load = self.load
        rpm = 1500 - 0.22 * load + rng.normal(0, 1.5)
        current = 4.0 + 0.14 * load + rng.normal(0, 0.25)
        rms = 1.1 + 0.012 * load + rng.normal(0, 0.25)
        crest = rng.normal(1.5, 0.15)
        temp = self.ambient + 12 + 0.22 * load + rng.normal(0, 1.5)
        if condition == "imbalance":
            rms *= rng.uniform(1.4, 3.0)
            temp += rng.uniform(0, 3)
        elif condition == "bearing-wear":
            rms *= rng.uniform(1.0, 1.6)
            crest = rng.uniform(1.9, 4.0)
            temp += rng.uniform(2, 12)
        elif condition == "overheating":
            temp += rng.uniform(6, 25)
            current *= rng.uniform(1.0, 1.2)
        return {
            "rpm": round(float(rpm), 1),
            "load_pct": round(load, 1),
            "motor_current_a": round(float(current), 2),
            "vibration_rms_mm_s": round(float(max(rms, 0.05)), 3),
            "vibration_peak_mm_s": round(float(max(rms, 0.05) * crest), 3),
            "bearing_temp_c": round(float(temp), 2),
        }

    def glitch(self) -> dict[str, Any]:
        """A reading no healthy or known-faulty machine gives: a stuck or dropped sensor."""
        row = self.reading()
        key = str(self.rng.choice(["rpm", "motor_current_a", "bearing_temp_c"]))
        row[key] = {"rpm": 0.0, "motor_current_a": 0.0, "bearing_temp_c": 150.0}[key]
        return row


def machine_sensor(
    rows: int = 2000, seed: int = 7, anomaly_rate: float = 0.02, labelled: bool = False
) -> list[dict[str, Any]]:
    """A stream of readings, mostly healthy, with `anomaly_rate` faults and
    sensor glitches mixed in (no target: isolation forest learns what is usual).
    labelled=True adds `anomaly` (true/false), for measuring a detector."""
    rng = np.random.default_rng(seed)
    machine = Machine(rng)
    out = []
    for _ in range(rows):
        abnormal = rng.random() < anomaly_rate
        if abnormal and rng.random() < 0.25:
            row = machine.glitch()
        else:
            row = machine.reading(str(rng.choice(CONDITIONS[1:])) if abnormal else "normal")
        if labelled:
            row["anomaly"] = bool(abnormal)
        out.append(row)
    return out


def machine_condition(rows: int = 2000, seed: int = 7) -> list[dict[str, Any]]:
    """Readings labelled by a maintenance engineer: normal (half) or one of three faults."""
    rng = np.random.default_rng(seed)
    machine = Machine(rng)
    out = []
    for _ in range(rows):
        condition = "normal" if rng.random() < 0.5 else str(rng.choice(CONDITIONS[1:]))
        out.append({**machine.reading(condition), "condition": condition})
    return out


def machine_temperature(rows: int = 2000, seed: int = 7) -> list[dict[str, Any]]:
    """Bearing temperature of a healthy motor from load, speed, room
    temperature and minutes since start (it warms up over ~20 minutes)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rows):
        load = float(rng.uniform(30, 95))
        rpm = float(rng.choice([990.0, 1480.0, 2960.0])) - 0.2 * load
        ambient = float(rng.uniform(12, 35))
        minutes = float(rng.uniform(0, 120))
        warm = 1 - np.exp(-minutes / 20)
        rise = (8 + 0.25 * load) * (rpm / 1480) ** 0.6 * warm
        out.append({
            "load_pct": round(load, 1), "rpm": round(rpm, 1), "ambient_temp_c": round(ambient, 1),
            "minutes_running": round(minutes, 1),
            "bearing_temp_c": round(float(ambient + rise + rng.normal(0, 0.8)), 2),
        })  # fmt: skip
    return out


def window_features(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise a window of readings (one a second) into the features a
    classifier sees: level, spread and peaks of vibration, temperature trend."""
    vib = np.array([r["vibration_rms_mm_s"] for r in readings])
    peak = np.array([r["vibration_peak_mm_s"] for r in readings])
    temp = np.array([r["bearing_temp_c"] for r in readings])
    minutes = np.arange(len(readings)) / 60
    centred = minutes - minutes.mean()
    slope = float(centred @ (temp - temp.mean()) / max(centred @ centred, 1e-12))  # least-squares line
    return {
        "vibration_mean_mm_s": round(float(vib.mean()), 3),
        "vibration_std_mm_s": round(float(vib.std()), 3),
        "vibration_max_mm_s": round(float(peak.max()), 3),
        "vibration_crest": round(float(peak.max() / max(vib.mean(), 1e-6)), 3),
        "temp_mean_c": round(float(temp.mean()), 2),
        "temp_slope_c_min": round(slope, 3),
        "current_mean_a": round(float(np.mean([r["motor_current_a"] for r in readings])), 2),
    }


def machine_windows(rows: int = 2000, seed: int = 7) -> list[dict[str, Any]]:
    """Half-minute windows of a one-second stream, summarised by
    window_features, labelled with the machine's condition in that window.
    In a failing machine the fault comes and goes and the heat builds up."""
    rng = np.random.default_rng(seed)
    machine = Machine(rng)
    out = []
    for _ in range(rows):
        condition = "normal" if rng.random() < 0.5 else str(rng.choice(CONDITIONS[1:]))
        readings = []
        heat = float(rng.uniform(3, 15))  # already warmer than usual when the window starts
        for _ in range(WINDOW):
            if condition == "overheating":
                reading = machine.reading("normal")
                heat += rng.uniform(0.01, 0.04)  # °C a second: 0.6-2.4 °C a minute
                reading["bearing_temp_c"] = round(reading["bearing_temp_c"] + heat, 2)
                reading["motor_current_a"] = round(reading["motor_current_a"] * 1.1, 2)
            else:
                reading = machine.reading(condition if rng.random() < 0.6 else "normal")
            readings.append(reading)
        out.append({**window_features(readings), "condition": condition})
    return out
