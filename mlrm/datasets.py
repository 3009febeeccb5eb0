"""Data for demos and tests: realistic synthetic generators (PCB solder
paste, rooms' air, a pump motor) and real data that scikit-learn ships (no
download at run time). `mlrm data NAME` writes any of GENERATORS as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from mlrm.simulation.machines import machine_condition, machine_sensor, machine_temperature, machine_windows
from mlrm.simulation.rooms import air_quality

PCB_FEATURES = [
    "volume_pct", "area_pct", "height_um", "offset_x_um", "offset_y_um", "bridge_gap_um",
    "shape_score", "coplanarity_um", "smear_pct", "paste_temp_c", "humidity_pct",
    "squeegee_pressure_n", "print_speed_mm_s", "stencil_prints", "separation_speed_mm_s", "board_thickness_mm",
]  # fmt: skip


def pcb_inspection(rows: int = 2000, seed: int = 7) -> list[dict[str, Any]]:
    """Solder-paste inspection (SPI) readings of one pad with the verdict of
    a human re-check: OK, error (a real defect), or pseudo-error (the machine
    flagged it, but the joint is fine: glare, smear, warped board)."""
    rng = np.random.default_rng(seed)
    n = rows
    prints = rng.uniform(0, 5000, n)
    temp = rng.normal(23, 1.5, n)
    humidity = rng.normal(45, 8, n)
    pressure = rng.normal(60, 5, n)
    speed = rng.normal(50, 8, n)
    separation = rng.normal(2.0, 0.4, n)
    thickness = rng.normal(1.6, 0.04, n)
    # Process physics: worn stencils and fast prints give less paste; high
    # pressure scoops it out; humidity and temperature make it slump (smear).
    volume = 100 - prints / 800 - (speed - 50) * 0.4 - (pressure - 60) * 0.6 + rng.normal(0, 9, n)
    area = 100 + (volume - 100) * 0.5 + rng.normal(0, 5, n)
    height = 120 * volume / np.maximum(area, 1) + rng.normal(0, 8, n)
    smear = np.clip(1.5 + (humidity - 45) * 0.08 + (temp - 23) * 0.3 + prints / 2500 + rng.gamma(1.5, 0.6, n), 0, None)
    offset_x = rng.normal(0, 12, n) + (separation - 2) * 10
    offset_y = rng.normal(0, 12, n)
    bridge = 160 - smear * 8 - (volume - 100) * 0.8 + rng.normal(0, 12, n)
    coplanarity = np.abs(rng.normal(8, 4, n) + (thickness - 1.6) * 60)
    glare = rng.random(n) < 0.1
    shape = np.clip(rng.normal(0.9, 0.04, n) - glare * rng.uniform(0.1, 0.3, n), 0, 1)
    defect = (volume < 76) | (volume > 126) | (np.abs(offset_x) > 30) | (np.abs(offset_y) > 30) | (bridge < 100)
    flagged = (shape < 0.8) | (smear > 5.5) | (coplanarity > 20) | ((volume < 84) | (volume > 118))
    label = np.where(defect, "error", np.where(flagged, "pseudo-error", "OK"))
    noise = rng.random(n) < 0.02
    label[noise] = rng.choice(["OK", "error", "pseudo-error"], noise.sum())
    columns = [volume, area, height, offset_x, offset_y, bridge, shape, coplanarity, smear, temp, humidity,
               pressure, speed, prints, separation, thickness]  # fmt: skip
    out = []
    for i in range(n):
        row: dict[str, Any] = {name: round(float(col[i]), 3) for name, col in zip(PCB_FEATURES, columns)}
        row["stencil_prints"] = int(prints[i])
        row["result"] = str(label[i])
        out.append(row)
    return out


def breast_cancer(rows: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The Wisconsin diagnostic breast-cancer data that scikit-learn ships."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    out = []
    for x, y in zip(data.data, data.target):
        row: dict[str, Any] = {n: float(v) for n, v in zip(names, x)}
        row["diagnosis"] = str(data.target_names[y])
        out.append(row)
    return out[:rows] if rows else out


GENERATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "pcb-inspection": pcb_inspection,
    "breast-cancer": breast_cancer,
    "air-quality": air_quality,
    "machine-sensor": machine_sensor,
    "machine-condition": machine_condition,
    "machine-temperature": machine_temperature,
    "machine-windows": machine_windows,
}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text with a header line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
