"""Data for demos and tests: realistic synthetic generators (PCB solder
paste, wrist-IMU worker activity, rooms' air, a pump motor) and real data that
scikit-learn ships (no download at run time). `mlrm data NAME` writes any of
GENERATORS as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from mlrm.tools.simulation.machines import machine_condition, machine_sensor, machine_temperature, machine_windows
from mlrm.tools.simulation.rooms import air_quality

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


IMU_RATE_HZ = 50
ACTIVITIES = ["hammering", "screwing", "sawing", "idle"]
IMU_CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


def _activity(kind: str, n: int, rng: np.random.Generator, strength: float, tempo: float) -> np.ndarray:
    """n samples (n x 6: acc in g, gyro in deg/s) of one activity in the sensor frame
    (x along the forearm, y across the wrist, z out of the back of the hand)."""
    t = np.arange(n) / IMU_RATE_HZ
    pitch0, roll0 = rng.normal(0.3, 0.15), rng.normal(0, 0.2)  # forearm pose, radians
    pitch, roll = np.full(n, pitch0), np.full(n, roll0)
    linear = np.zeros((n, 3))
    if kind == "hammering":
        f = rng.uniform(1.7, 2.3) * tempo
        phase = (f * t + rng.random()) % 1.0
        # Slow lift, fast strike, stop dead on the nail.
        swing = np.where(phase < 0.7, phase / 0.7, 1 - (phase - 0.7) / 0.3)
        pitch = pitch0 + strength * 0.9 * (swing - 0.5)
        hit = (np.diff(np.floor(f * t + 1e-9), prepend=0) > 0).astype(float)
        impulse = np.convolve(hit, np.exp(-np.arange(6) / 1.2), mode="full")[:n]
        linear[:, 0] += -strength * rng.uniform(3, 5) * impulse
        linear[:, 2] += strength * rng.uniform(1.5, 3) * impulse * np.sign(rng.normal(size=n))
    elif kind == "screwing":
        f = rng.uniform(0.9, 1.6) * tempo
        phase = (f * t + rng.random()) % 1.0
        # Turn slowly, let go and turn back fast (regrip).
        turn = np.where(phase < 0.75, phase / 0.75, 1 - (phase - 0.75) / 0.25)
        roll = roll0 + strength * 1.1 * (turn - 0.5)
        pitch = pitch0 + 0.05 * np.sin(2 * np.pi * f * t)
        linear += rng.normal(0, 0.04, (n, 3))
    elif kind == "sawing":
        f = rng.uniform(0.9, 1.5) * tempo
        stroke = strength * rng.uniform(0.2, 0.3)  # metres
        w = 2 * np.pi * f
        phase = w * t + rng.uniform(0, 2 * np.pi)
        linear[:, 0] = -(w**2) * stroke / 2 * np.cos(phase) / 9.81
        # Teeth bite on the push stroke only: a buzz along the blade.
        pushing = np.sin(phase) > 0
        linear[:, 0] += pushing * 0.12 * strength * np.sin(2 * np.pi * rng.uniform(12, 18) * t)
        linear[:, 2] += pushing * rng.normal(0, 0.08, n)
        pitch = pitch0 + 0.15 * strength * np.sin(phase + 0.4)
    else:  # idle: resting, now and then reaching for something (a short, irregular movement)
        pitch = pitch0 + np.cumsum(rng.normal(0, 0.002, n))
        roll = roll0 + np.cumsum(rng.normal(0, 0.002, n))
        reach = np.convolve(rng.random(n) < 0.008, np.hanning(40), mode="same")
        pitch += 0.4 * reach * rng.normal()
        roll += 0.6 * reach * rng.normal()
        linear += reach[:, None] * rng.normal(0, 0.25, (n, 3))
    fatigue = 1 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(5, 15) + rng.uniform(0, 6.3))
    pitch, roll = pitch0 + (pitch - pitch0) * fatigue, roll0 + (roll - roll0) * fatigue
    gravity = np.stack([-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)], axis=1)
    gyro = np.stack([np.gradient(roll) * IMU_RATE_HZ, np.gradient(pitch) * IMU_RATE_HZ, rng.normal(0, 0.05, n)], axis=1)
    return np.concatenate([gravity + linear, np.degrees(gyro)], axis=1)


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix for small angles (radians) about x, y and z."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx  # type: ignore[no-any-return]


def worker_activity(rows: int = 2000, seed: int = 7) -> list[dict[str, Any]]:
    """Wrist IMU records at 50 Hz (acceleration in g, rotation rate in deg/s) of
    workers hammering, screwing, sawing or idle, in segments of 4 to 20 s.
    Each worker is a stream with its own strength, tempo, sensor fit and bias;
    `t` is seconds since the worker's session started."""
    rng = np.random.default_rng(seed)
    workers = max(1, min(12, rows // 4000))
    out: list[dict[str, Any]] = []
    for w in range(workers):
        n_worker = rows // workers + (1 if w < rows % workers else 0)
        strength, tempo = rng.uniform(0.75, 1.25), rng.uniform(0.85, 1.15)
        acc_bias, gyro_bias = rng.normal(0, 0.03, 3), rng.normal(0, 2.0, 3)
        mount = _rotation(rng.normal(0, 0.25, 3))  # how the strap sits on this wrist
        samples: list[np.ndarray] = []
        labels: list[str] = []
        previous = ""
        while len(labels) < n_worker:
            kind = str(rng.choice([a for a in ACTIVITIES if a != previous]))
            length = int(rng.uniform(4, 20) * IMU_RATE_HZ)
            samples.append(_activity(kind, length, rng, strength, tempo))
            # Labels come from a person watching a video: each change is marked up to 0.4 s off.
            late = int(rng.integers(-20, 21)) if labels else 0
            labels = labels[: len(labels) + late] if late < 0 else labels + [previous] * late
            labels += [kind] * (length - late)
            previous = kind
        data = np.concatenate(samples)[:n_worker]
        data[:, :3], data[:, 3:] = data[:, :3] @ mount.T, data[:, 3:] @ mount.T
        data[:, :3] += acc_bias + rng.normal(0, 0.02, (n_worker, 3))
        data[:, 3:] += gyro_bias + rng.normal(0, 1.5, (n_worker, 3))
        data[:, :3] = np.clip(data[:, :3], -16, 16)
        data[:, 3:] = np.clip(data[:, 3:], -2000, 2000)
        for i in range(n_worker):
            row: dict[str, Any] = {"worker": f"worker-{w + 1}", "t": round(i / IMU_RATE_HZ, 3)}
            row.update({c: round(float(v), 4) for c, v in zip(IMU_CHANNELS, data[i])})
            row["activity"] = labels[i]
            out.append(row)
    return out


GENERATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "pcb-inspection": pcb_inspection,
    "breast-cancer": breast_cancer,
    "worker-activity": worker_activity,
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
