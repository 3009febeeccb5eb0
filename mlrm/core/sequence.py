"""Windows of ordered records: how a config set's `sequence` section turns
records into the (n, window, features) arrays recurrent and convolutional
networks read, for training data and for predict requests alike.

Transport-free. Records are validated by the same RowEncoder as tabular
rows; the stream id and the time are fields beside the inputs. Training data
is grouped by stream, ordered by time (or file order), cut at rejected
records, and windowed every `step` records. A classification window's label
is its last record's (`label: last`) or its most frequent (`label:
majority`); a forecast's target is the target of the `horizon` records after
the window (horizon 0: of its last record).
"""

from __future__ import annotations

import math
from collections.abc import Set
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from mlrm.config.sections import SequenceSpec
from mlrm.config.service_config import ServiceConfig
from mlrm.core.encoding import RowEncoder, TargetEncoder
from mlrm.errors import DataError, FieldError, RequestError

MAX_STREAM_ID = 200


class TrainingWindows(NamedTuple):
    """Windows cut from labelled records, and the verdict on every record."""

    X: np.ndarray  # (windows, window, width)
    y: np.ndarray | None
    rejected: list[FieldError]
    groups: np.ndarray  # stream index of each window
    accepted: list[int]  # records that passed validation


def parse_time(value: Any, *, strings: bool = False) -> float | str:
    """A record time as seconds: a number, or an ISO 8601 string; else an error message."""
    if type(value) in (int, float):
        return float(value) if math.isfinite(value) else f"expected a finite time, got {value!r}"
    if isinstance(value, str):
        text = value.strip()
        if strings:
            try:
                return parse_time(float(text))
            except ValueError:
                pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return f"expected a number or an ISO 8601 time such as 2024-05-01T12:00:00.020Z, got {value!r}"
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return f"expected a number or an ISO 8601 time, got {'null' if value is None else type(value).__name__}"


def parse_stream(value: Any) -> str | None:
    """The stream id as text, or None if it is not a non-empty string or an integer."""
    if type(value) is int or (isinstance(value, str) and 0 < len(value.strip()) <= MAX_STREAM_ID):
        return str(value).strip()
    return None


class WindowEncoder:
    """Validates records and lays them out as windows of the inputs that feed the model."""

    def __init__(self, config: ServiceConfig, spec: SequenceSpec, rows: RowEncoder | None = None) -> None:
        self.config, self.spec = config, spec
        self.rows = rows or RowEncoder(config)
        self.columns = [c for name in spec.inputs for c in self.rows.span(name)]
        self.width = len(self.columns)
        self.scaled = [self.rows.scaled[c] for c in self.columns]

    @classmethod
    def of(cls, config: ServiceConfig, rows: RowEncoder | None = None) -> WindowEncoder | None:
        spec = config.sequence
        return cls(config, spec, rows) if spec else None

    @property
    def shape(self) -> tuple[int, int]:
        return self.spec.window, self.width

    def _time(self, record: dict[str, Any], at: str, errors: list[FieldError], *, strings: bool = False) -> float:
        key = self.spec.order_by
        assert key is not None
        if key not in record:
            errors.append(FieldError(f"{at}/{key}", f"missing the record time '{key}' (sequence.order_by)"))
            return math.nan
        value = parse_time(record[key], strings=strings)
        if isinstance(value, str):
            errors.append(FieldError(f"{at}/{key}", value))
            return math.nan
        return value

    def _stream(self, record: dict[str, Any], at: str, errors: list[FieldError]) -> str:
        key = self.spec.stream
        if key is None:
            return ""
        stream = parse_stream(record.get(key))
        if stream is None:
            detail = "missing" if key not in record else f"{record[key]!r} is not"
            errors.append(FieldError(f"{at}/{key}", f"{detail} a stream id (sequence.stream): "
                                                    f"a string of 1 to {MAX_STREAM_ID} characters or an integer"))  # fmt: skip
        return stream or ""

    def _features(self, record: Any) -> Any:
        fields = self.spec.fields
        return {k: v for k, v in record.items() if k not in fields} if type(record) is dict else record

    def window(self, records: Any, at: str) -> tuple[np.ndarray | None, list[FieldError]]:
        """A ready window -> (window x width matrix, []), or (None, errors).

        Records carrying the order_by time are sorted by it (all or none must carry it).
        """
        n = self.spec.window
        if not isinstance(records, list) or len(records) != n:
            got = f"{len(records)} records" if isinstance(records, list) else "no array"
            return None, [FieldError(at, f"expected an array of {n} records (sequence.window), got {got}")]
        matrix, errors, _kept = self.rows.encode_collect([self._features(r) for r in records], at)
        key = self.spec.order_by
        timed = [type(r) is dict and key in r for r in records] if key else []
        if errors:
            return None, errors
        if any(timed):
            if not all(timed):
                missing = timed.index(False)
                return None, [FieldError(f"{at}/{missing}/{key}", f"either every record of a window carries "
                                                                  f"'{key}' or none does")]  # fmt: skip
            times = [self._time(r, f"{at}/{j}", errors) for j, r in enumerate(records)]
            if errors:
                return None, errors
            matrix = matrix[np.argsort(times, kind="stable")]
        return matrix[:, self.columns], []

    def record(self, record: Any, at: str) -> tuple[tuple[str, float, np.ndarray] | None, list[FieldError]]:
        """One buffered record -> ((stream, time, row of width), []), or (None, errors)."""
        matrix, errors, _kept = self.rows.encode_collect([self._features(record)], "")
        errors = [FieldError(at + e.pointer[2:], e.detail) for e in errors]  # "/0/x" -> at + "/x"
        if type(record) is not dict:
            return None, errors
        stream = self._stream(record, at, errors)
        time = self._time(record, at, errors) if self.spec.order_by else 0.0
        if errors:
            return None, errors
        return (stream, time, matrix[0, self.columns]), []

    def training_windows(
        self,
        records: list[dict[str, Any]],
        *,
        strings: bool = False,
        pointer: str = "/rows",
        invalid: Set[int] = frozenset(),
    ) -> TrainingWindows:
        """Labelled records -> windows; `invalid` records are rejected already (they cut their stream)."""
        spec, target = self.spec, self.config.target
        as_input = target is not None and target.name in self.rows.names
        features = []
        for r in records:
            f = self._features(r)
            if target is not None and not as_input and type(f) is dict:
                f = {k: v for k, v in f.items() if k != target.name}
            features.append(f)
        X, errors, kept = self.rows.encode_collect(features, pointer, strings=strings)
        n = len(records)
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[kept] = np.arange(len(kept))
        streams, times = [""] * n, np.zeros(n)
        y = np.zeros(n)
        targets = TargetEncoder(self.config) if target is not None else None
        for i, r in enumerate(records):
            if type(r) is not dict:
                continue
            field_errors: list[FieldError] = []
            streams[i] = self._stream(r, f"{pointer}/{i}", field_errors)
            times[i] = self._time(r, f"{pointer}/{i}", field_errors, strings=strings) if spec.order_by else i
            if targets is not None and target is not None:
                y[i], message = targets.encode_one(r.get(target.name))
                if message:
                    field_errors.append(FieldError(f"{pointer}/{i}/{target.name}", message))
            if field_errors or i in invalid:
                errors.extend(field_errors)
                row_of[i] = -1
                times[i] = math.inf  # where it belongs is unknown: let it cut nothing but the tail
        fed = X[:, self.columns]
        need = spec.window + spec.horizon
        windows: list[np.ndarray] = []
        labels: list[Any] = []
        groups: list[int] = []
        by_stream: dict[str, list[int]] = {}
        for i, s in enumerate(streams):
            by_stream.setdefault(s, []).append(i)
        for g, members in enumerate(by_stream.values()):
            ordered = sorted(members, key=lambda i: times[i])
            for segment in _segments(ordered, row_of):
                for start in range(0, len(segment) - need + 1, spec.step):
                    idx = segment[start : start + spec.window]
                    windows.append(fed[row_of[idx]])
                    labels.append(self._label(y, idx, segment[start + spec.window : start + need]))
                    groups.append(g)
        X3 = np.stack(windows) if windows else np.zeros((0, spec.window, self.width))
        out_y = None if target is None else np.asarray(labels, dtype=np.float64)
        accepted = np.flatnonzero(row_of >= 0).tolist()
        return TrainingWindows(X3, out_y, errors, np.asarray(groups, dtype=np.int64), accepted)

    def _label(self, y: np.ndarray, idx: np.ndarray, ahead: np.ndarray) -> Any:
        target = self.config.target
        if target is None:
            return 0.0
        if target.kind == "classification":
            codes = y[idx].astype(np.int64)
            if self.spec.label == "last":
                return float(codes[-1])
            counts = np.bincount(codes)
            tied = np.flatnonzero(counts == counts.max())
            # Ties go to the label seen most recently.
            return float(max(tied, key=lambda c: np.flatnonzero(codes == c)[-1]))
        if self.spec.horizon == 0:
            return float(y[idx[-1]])
        values = y[ahead]
        return float(values[0]) if self.spec.horizon == 1 else values


def _segments(ordered: list[int], row_of: np.ndarray) -> list[np.ndarray]:
    """Runs of usable records: a rejected record cuts the stream, so no window spans it."""
    out: list[np.ndarray] = []
    run: list[int] = []
    for i in ordered:
        if row_of[i] < 0:
            if run:
                out.append(np.asarray(run))
            run = []
        else:
            run.append(i)
    if run:
        out.append(np.asarray(run))
    return out


def split_indices(config: ServiceConfig, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chronological holdout: the last `training.holdout` share of every stream's
    windows, minus the training windows that share records with them."""
    spec = config.sequence
    assert spec is not None
    fraction = config.training.holdout
    overlap = math.ceil((spec.window + spec.horizon) / spec.step) - 1
    train: list[np.ndarray] = []
    hold: list[np.ndarray] = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        n_hold = int(round(len(idx) * fraction))
        if n_hold == 0 or len(idx) - n_hold - overlap < 1:
            train.append(idx)  # too short to split
            continue
        hold.append(idx[-n_hold:])
        train.append(idx[: len(idx) - n_hold - overlap])
    if not hold:
        raise DataError(
            f"too few windows per stream to hold out {fraction:.0%} for evaluation: record longer streams, "
            f"or lower sequence.window ({spec.window}) or sequence.step ({spec.step})"
        )
    empty = np.zeros(0, dtype=np.int64)
    return np.concatenate(train) if train else empty, np.concatenate(hold)


def request_error(errors: list[FieldError]) -> RequestError:
    return RequestError("Invalid input", 422, errors=errors[:20])
