"""The reference profile of a version: what its model saw when it was trained.

Recorded by the trainer as the artifact `profile.json` of every new version
(its sha256 in parameters.yaml, checked on every read like any artifact):

- per input, a compact distribution of the training rows: for a number, the
  counts in up to 10 quantile bins (the deciles' edges, ties merged) and of
  missing values; for a category or boolean, the count of each value and of
  missing values. For a windowed set, the records inside the training windows,
  per feature the model reads;
- the target: label counts (classification) or quantile bins (regression);
- the predictions the model made on the holdout, the same way.

`Binner` counts served rows into the same bins, in one numpy pass over a
batch; mlrm.core.drift compares the two (docs/drift.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlrm.config.service_config import ServiceConfig
from mlrm.errors import StateError

PROFILE = "profile.json"
FORMAT = 1
BINS = 10


@dataclass(frozen=True)
class Column:
    """Where one profiled input lives in an encoded row (or a window's record)."""

    name: str
    kind: str  # number | category
    start: int
    stop: int  # a one-hot category spans several columns
    values: tuple[Any, ...] = ()


def layout(config: ServiceConfig) -> list[Column]:
    """The inputs the model reads, in the columns of an encoded row (windows: of one record of a window)."""
    one_hot = config.preprocessing.one_hot
    features = {f.name: f for f in config.inputs}
    names = list(config.sequence.inputs) if config.sequence else [f.name for f in config.inputs]
    out: list[Column] = []
    col = 0
    for name in names:
        f = features[name]
        if f.type == "category":
            values = tuple(f.values or ())
            width = len(values) if one_hot else 1
            out.append(Column(name, "category", col, col + width, values))
        elif f.type == "boolean":
            out.append(Column(name, "category", col, col + 1, (False, True)))
            width = 1
        else:
            out.append(Column(name, "number", col, col + 1))
            width = 1
        col += width
    return out


def _edges(values: np.ndarray) -> list[float]:
    present = values[~np.isnan(values)]
    if not len(present):
        return []
    return [float(e) for e in np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))]


def _codes(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Category codes of an encoded block (n x 1 codes, or n x k one-hot) and where they are missing."""
    missing = np.isnan(block[:, 0])
    if block.shape[1] == 1:
        return np.where(missing, 0, block[:, 0]).astype(np.int64), missing
    return np.argmax(np.nan_to_num(block), axis=1), missing | ~(np.nan_to_num(block) > 0).any(axis=1)


def _number(values: np.ndarray, edges: list[float] | None = None) -> dict[str, Any]:
    edges = _edges(values) if edges is None else edges
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {"kind": "number", "edges": edges, "counts": counts.tolist(), "missing": int(len(values) - len(present))}


def _category(codes: np.ndarray, missing: np.ndarray, values: tuple[Any, ...]) -> dict[str, Any]:
    counts = np.bincount(codes[~missing], minlength=len(values))[: len(values)]
    return {"kind": "category", "values": list(values), "counts": counts.tolist(), "missing": int(missing.sum())}


def _outputs(config: ServiceConfig, values: np.ndarray) -> dict[str, Any]:
    """Counts of target values or predictions: labels, anomaly flags, or quantile bins of numbers."""
    values = np.asarray(values)
    if config.task == "classification":
        codes = values.astype(np.int64)
        return _category(codes, np.zeros(len(codes), dtype=bool), tuple(str(v) for v in config.labels))
    if config.task == "anomaly":
        codes = values.astype(np.int64)
        return _category(codes, np.zeros(len(codes), dtype=bool), (False, True))
    return _number(values.astype(np.float64))


def build(
    config: ServiceConfig, train_X: np.ndarray, train_y: np.ndarray | None, predictions: np.ndarray
) -> dict[str, Any]:
    """The profile of a model fitted on train_X (rows, or windows) that predicted `predictions` on the holdout."""
    rows = train_X.reshape(-1, train_X.shape[-1]).astype(np.float64)
    inputs: dict[str, Any] = {}
    for column in layout(config):
        block = rows[:, column.start : column.stop]
        if column.kind == "number":
            inputs[column.name] = _number(block[:, 0])
        else:
            inputs[column.name] = _category(*_codes(block), column.values)
    return {
        "format": FORMAT,
        "bins": BINS,
        "rows": int(len(rows)),
        "inputs": inputs,
        "target": None if train_y is None or config.task == "anomaly" else _outputs(config, train_y),
        "predictions": _outputs(config, predictions),
        "holdout_rows": int(len(predictions)),
    }


def dumps(profile: dict[str, Any]) -> bytes:
    return json.dumps(profile, separators=(",", ":")).encode("utf-8")


def loads(config: ServiceConfig, data: bytes, where: str) -> dict[str, Any]:
    """A stored profile, checked against the config set's inputs; StateError naming the file if it does not fit."""
    try:
        profile = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise StateError(f"{where}/{PROFILE} is not JSON; retrain to record the reference profile again") from None
    names = [c.name for c in layout(config)]
    if (
        not isinstance(profile, dict)
        or profile.get("format") != FORMAT
        or sorted(profile.get("inputs") or {}) != sorted(names)
    ):
        raise StateError(
            f"{where}/{PROFILE} is not a reference profile of format {FORMAT} for the inputs {', '.join(names)}; "
            "retrain to record one"
        )
    return profile


class Binner:
    """Counts encoded rows into a profile's bins: one numpy pass per batch, no Python loop over rows.

    Slots, in order: per input its bins then one for missing; then the predictions' bins; then one slot
    that counts the rows (records) binned and one that counts every row predicted (binned or not: a
    busy process bins a sample, mlrm.core.drift)."""

    def __init__(self, config: ServiceConfig, profile: dict[str, Any]) -> None:
        self.columns = layout(config)
        self.names = [c.name for c in self.columns]
        self.width = max((c.stop for c in self.columns), default=1)  # columns of an encoded record
        self.offsets: list[int] = []
        self.reference: list[np.ndarray] = []
        numbers: list[tuple[int, list[float], int]] = []  # (column, edges, offset)
        self._codes: list[tuple[int, int, int, int]] = []  # (start, stop, n values, offset)
        at = 0
        for column in self.columns:
            entry = profile["inputs"][column.name]
            self.offsets.append(at)
            self.reference.append(np.array([*entry["counts"], entry["missing"]], dtype=np.float64))
            if column.kind == "number":
                numbers.append((column.start, entry["edges"], at))
            else:
                self._codes.append((column.start, column.stop, len(column.values), at))
            at += len(entry["counts"]) + 1
        self.input_slots = at
        # Every number input's edges in one sorted array of complex keys, column index + 1j * edge: numpy
        # orders complex numbers by real part, then imaginary, so one searchsorted bins every column at once.
        self._num_cols = np.array([c for c, _, _ in numbers], dtype=np.int64)
        self._num_ids = np.arange(len(numbers), dtype=np.float64)
        keys = [complex(i, e) for i, (_, edges, _) in enumerate(numbers) for e in edges]
        self._keys = np.array(keys, dtype=np.complex128)
        starts = np.cumsum([0] + [len(edges) for _, edges, _ in numbers])[:-1]
        # Subtracted from a value's position among all keys: its bin's slot.
        self._num_shift = np.array([o for _, _, o in numbers], dtype=np.int64) - starts
        predictions = profile["predictions"]
        self.prediction_reference = np.array([*predictions["counts"], predictions["missing"]], dtype=np.float64)
        self._prediction_edges = np.array(predictions.get("edges") or [], dtype=np.float64)
        self._numeric_predictions = predictions["kind"] == "number"
        self.prediction_offset = at
        self.rows_slot = at + len(self.prediction_reference)
        self.seen_slot = self.rows_slot + 1
        self.slots = self.seen_slot + 1

    def count(self, rows: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Slot counts of encoded rows (n x width: records) and of the predictions made for them."""
        out = np.zeros(self.slots, dtype=np.int64)
        if len(self._num_cols):
            values = rows[:, self._num_cols]
            missing = np.isnan(values)
            keys = np.empty(values.shape, dtype=np.complex128)
            keys.real = self._num_ids
            keys.imag = np.where(missing, np.inf, values)  # past the column's last edge; +1 below: missing slot
            bins = np.searchsorted(self._keys, keys.ravel(), side="right").reshape(values.shape)
            bins += self._num_shift + missing
            out[: self.input_slots] += np.bincount(bins.ravel(), minlength=self.input_slots)[: self.input_slots]
        for start, stop, n, offset in self._codes:
            codes, missing = _codes(rows[:, start:stop])
            codes = np.where(missing | (codes < 0) | (codes >= n), n, codes) + offset
            out[offset : offset + n + 1] += np.bincount(codes, minlength=offset + n + 1)[offset:]
        values = np.asarray(predictions)
        if self._numeric_predictions:
            present = values.astype(np.float64)
            codes = np.where(np.isnan(present), len(self._prediction_edges) + 1,
                             np.searchsorted(self._prediction_edges, present, side="right"))  # fmt: skip
        else:
            codes = values.astype(np.int64)
        k = len(self.prediction_reference)
        out[self.prediction_offset : self.rows_slot] += np.bincount(np.clip(codes, 0, k - 1), minlength=k)[:k]
        out[self.rows_slot] = out[self.seen_slot] = len(rows)
        return out
