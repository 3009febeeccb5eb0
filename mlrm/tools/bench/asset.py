"""The virtual asset of `mlrm bench`: records made from a config set's inputs alone.

Any config set gets data, not only the shipped ones: every input is drawn from
its declared type and range with a seed (numbers and integers inside min..max,
categories from their values, booleans), and the target is a function of the
inputs plus noise (classes by quantiles of a random linear score, so every
label occurs and a model has something to learn; a regression target the same
score on a scale of its own). A set with a sequence section gets streams of
records in time order whose signal depends on the label of the stretch they
are in. What is measured is the cost of training and answering, not accuracy.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlrm.config.service_config import Feature, ServiceConfig
from mlrm.errors import DataError
from mlrm.training import csv_files

# Where a bound is missing, values spread this far from the one given (or from 0).
OPEN_SPAN = 100.0
STREAMS = 4  # sequence sets: streams (devices) records come from
STRETCH_WINDOWS = 2  # sequence sets: a label holds for this many windows of a stream


@dataclass(frozen=True)
class Records:
    """Records to train on and instances to predict with (one window each for a sequence set)."""

    records: list[dict[str, Any]]
    instances: list[dict[str, Any]]
    source: str  # "generated (seed 7)" or the CSV file


def _bounds(feature: Feature) -> tuple[float, float]:
    low, high = feature.min, feature.max
    if low is not None and high is not None:
        return float(low), float(high)
    if low is not None:
        return float(low), float(low) + OPEN_SPAN
    if high is not None:
        return float(high) - OPEN_SPAN, float(high)
    centre = float(feature.default) if isinstance(feature.default, int | float) else 0.0
    return centre - OPEN_SPAN, centre + OPEN_SPAN


def _column(feature: Feature, n: int, rng: np.random.Generator) -> tuple[list[Any], np.ndarray]:
    """n values of one input, and their numeric image for the target's score."""
    if feature.type == "boolean":
        flags = rng.random(n) < 0.5
        return [bool(f) for f in flags], flags.astype(float)
    if feature.type == "category":
        values = feature.values or ("",)
        codes = rng.integers(0, len(values), n)
        return [values[c] for c in codes], codes.astype(float)
    low, high = _bounds(feature)
    # Around the middle of the range, clipped into it: most readings are ordinary.
    drawn = np.clip(rng.normal((low + high) / 2, (high - low) / 6, n), low, high)
    if feature.type == "integer":
        ints = np.clip(np.rint(drawn), math.ceil(low), math.floor(high)).astype(np.int64)
        return [int(v) for v in ints], ints.astype(float)
    return [round(float(v), 4) for v in drawn], drawn


def _score(numeric: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A random linear score of the standardised inputs, plus a little noise."""
    n = len(numeric[0]) if numeric else 0
    score = np.zeros(n)
    for column in numeric:
        spread = column.std() or 1.0
        score += rng.normal() * (column - column.mean()) / spread
    return score + rng.normal(0, 0.3 * (score.std() or 1.0), n)


def _target(config: ServiceConfig, score: np.ndarray) -> list[Any] | None:
    target = config.target
    if target is None:
        return None
    if target.kind == "classification":
        labels = list(target.labels)
        edges = np.quantile(score, np.linspace(0, 1, len(labels) + 1)[1:-1])
        return [labels[int(i)] for i in np.searchsorted(edges, score)]
    return [round(float(v), 4) for v in 100 + 10 * score]


def tabular(config: ServiceConfig, rows: int, seed: int) -> list[dict[str, Any]]:
    """rows labelled records of a config set without a sequence section."""
    rng = np.random.default_rng(seed)
    columns = {f.name: _column(f, rows, rng) for f in config.inputs}
    target = _target(config, _score([numeric for _, numeric in columns.values()], rng))
    records = [{name: values[i] for name, (values, _) in columns.items()} for i in range(rows)]
    if target is not None and config.target is not None and config.target.name not in columns:
        for record, value in zip(records, target):
            record[config.target.name] = value
    return records


def sequence(config: ServiceConfig, records: int, seed: int) -> list[dict[str, Any]]:
    """About `records` labelled records in STREAMS streams, in time order, for a set with a sequence section."""
    spec = config.sequence
    assert spec is not None
    rng = np.random.default_rng(seed)
    target = config.target
    labels = list(target.labels) if target is not None and target.kind == "classification" else [None]
    stretch = spec.window * STRETCH_WINDOWS
    streams = STREAMS if spec.stream else 1
    per_stream = max(records // streams, spec.window + spec.horizon + spec.step)
    out: list[dict[str, Any]] = []
    for s in range(streams):
        t = np.arange(per_stream)
        stretch_of = t // stretch
        label_of = [labels[int(k)] for k in rng.integers(0, len(labels), int(stretch_of[-1]) + 1)]
        # Each label its own rhythm: a window's signal says which stretch it is in.
        code = np.array([labels.index(label_of[k]) for k in stretch_of], dtype=float)
        values: dict[str, list[Any]] = {}
        for j, feature in enumerate(config.inputs):
            if feature.type in ("number", "integer"):
                low, high = _bounds(feature)
                wave = np.sin(2 * np.pi * t * (0.02 + 0.03 * code) + j)
                drawn = np.clip(
                    (low + high) / 2 + (high - low) / 8 * (wave + rng.normal(0, 0.3, per_stream)), low, high
                )
                values[feature.name] = (
                    [int(v) for v in np.rint(drawn)]
                    if feature.type == "integer"
                    else [round(float(v), 4) for v in drawn]
                )
            else:
                values[feature.name] = _column(feature, per_stream, rng)[0]
        for i in range(per_stream):
            record: dict[str, Any] = {name: column[i] for name, column in values.items()}
            if spec.stream:
                record[spec.stream] = f"asset-{s + 1}"
            if spec.order_by:
                record[spec.order_by] = round(float(i) * 0.02, 2)  # 50 Hz
            if target is not None and target.name not in record:
                label = label_of[int(stretch_of[i])]
                record[target.name] = label if label is not None else round(float(values_mean(record, config)), 4)
            out.append(record)
    return out


def values_mean(record: dict[str, Any], config: ServiceConfig) -> float:
    """A regression target for a sequence record: the mean of its numeric inputs."""
    numbers = [float(record[f.name]) for f in config.inputs if f.type in ("number", "integer")]
    return sum(numbers) / len(numbers) if numbers else 0.0


def generate(config: ServiceConfig, rows: int, seed: int) -> list[dict[str, Any]]:
    """Labelled records for any config set (windows need records: a sequence set gets rows x window/step)."""
    if config.sequence is not None:
        spec = config.sequence
        return sequence(config, rows * spec.step + STREAMS * spec.window, seed)
    return tabular(config, rows, seed)


def instances(config: ServiceConfig, records: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` predict instances from records: inputs only; for a sequence set, ready windows."""
    names = [f.name for f in config.inputs]
    spec = config.sequence
    if spec is None:
        rows = [{k: r[k] for k in names if k in r} for r in records[: max(count, 1)]]
        return [rows[i % len(rows)] for i in range(count)]
    keep = [*names, *([spec.order_by] if spec.order_by else [])]
    by_stream: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        by_stream.setdefault(r.get(spec.stream) if spec.stream else None, []).append(r)
    windows = []
    for stream in by_stream.values():
        for start in range(0, len(stream) - spec.window + 1, spec.window):
            windows.append({"window": [{k: r[k] for k in keep if k in r} for r in stream[start : start + spec.window]]})
    if not windows:
        raise DataError(f"no stream has {spec.window} records (sequence.window) to make a predict window from")
    return [windows[i % len(windows)] for i in range(count)]


def to_csv(records: list[dict[str, Any]], path: Path) -> None:
    """Records as a CSV file `mlrm train` reads (booleans as true/false)."""
    header = list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()})
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _typed(feature: Feature, text: str) -> Any:
    """A CSV cell as the JSON value a predict request carries."""
    if feature.type == "number":
        return float(text)
    if feature.type == "integer":
        return int(float(text))
    if feature.type == "boolean":
        return text.strip().lower() in ("true", "1", "yes")
    return text


def read_csv(config: ServiceConfig, path: Path) -> list[dict[str, Any]]:
    """A user's CSV file (`--data`) as records with typed inputs, read as `mlrm train` reads it."""
    table = csv_files.read_file(path, config)
    features = {f.name: f for f in config.inputs}
    out = []
    for i, row in enumerate(table.records):
        record: dict[str, Any] = {}
        for key, text in row.items():
            if text is None or text.strip() == "":
                continue
            try:
                record[key] = _typed(features[key], text) if key in features else text
            except ValueError:
                raise DataError(
                    f"{path}:{table.lines[i]}: {key}: {text!r} is not a {features[key].type}; fix the cell or drop the row"
                ) from None
        out.append(record)
    if not out:
        raise DataError(f"{path}: no data rows under the header; give a CSV with the inputs and the target")
    return out
