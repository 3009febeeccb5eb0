"""Turn request rows into the float matrix a model sees, checking every value.

A RowEncoder is compiled once from the config set's inputs: one small
converter per feature, so a request costs a loop over its values and nothing
else. Training data goes through the same encoder, so predict and training
accept exactly the same values. CSV cells arrive as strings: `strings=True`
parses them first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mlrm.config.service_config import Feature, ServiceConfig
from mlrm.core.rowcode import LIMIT, FastRows, bounds, compile_rows
from mlrm.errors import FieldError, RequestError, did_you_mean

MAX_ERRORS = 20
_MISSING = object()
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}

# A converter writes one feature of one row into `out` at its columns, or
# returns an error message.
Converter = Callable[[Any, list[float]], "str | None"]


def _parse_string(kind: str, value: str) -> Any:
    text = value.strip()
    if text == "":
        return None
    if kind in ("number", "integer"):
        try:
            number = float(text)
        except ValueError:
            return value
        return int(number) if kind == "integer" and number.is_integer() else number
    if kind == "boolean":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else value
    return text


def _number_converter(f: Feature, col: int) -> Converter:
    low, high = bounds(f)
    integer = f.type == "integer"

    def convert(v: Any, out: list[float]) -> str | None:
        t = type(v)
        if t is bool or (t is not int and t is not float):
            return f"expected {'an integer' if integer else 'a number'}, got {_shown(v)}"
        if integer and t is float and not v.is_integer():
            return f"expected an integer, got {v!r}"
        # v itself, not float(v): an int too large for a float compares exactly instead of raising.
        if not low <= v <= high:  # also rejects NaN
            return f"{_brief(v)} is out of range: expected {_range(f)}"
        out[col] = float(v)
        return None

    return convert


def _boolean_converter(f: Feature, col: int) -> Converter:
    def convert(v: Any, out: list[float]) -> str | None:
        if type(v) is not bool:
            return f"expected true or false, got {_shown(v)}"
        out[col] = 1.0 if v else 0.0
        return None

    return convert


def _category_converter(f: Feature, col: int, one_hot: bool) -> Converter:
    values = f.values or ()
    index = {v: i for i, v in enumerate(values)}
    index.update({str(v): i for i, v in enumerate(values)})
    allowed = ", ".join(str(v) for v in values)

    def convert(v: Any, out: list[float]) -> str | None:
        scalar = type(v) in (str, int, float)
        i = index.get(v) if scalar else None
        if i is None:
            return f"unknown category {_brief(v) if scalar else _shown(v)}: expected one of {allowed}"
        if one_hot:
            out[col + i] = 1.0
        else:
            out[col] = float(i)
        return None

    return convert


def _shown(v: Any) -> str:
    kind = {str: "string", bool: "boolean", dict: "object", list: "array", type(None): "null"}.get(type(v), "value")
    return f"{kind} {_brief(v)}" if not isinstance(v, (dict, list)) else kind


def _brief(v: Any) -> str:
    """A value for a message, kept short: no repr of a 1 MB string, or of an int past repr's 4,300 digits."""
    if type(v) is int and abs(v) >= 10**24:
        return f"an integer of about {int(v.bit_length() * math.log10(2)) + 1} digits"
    if type(v) is str and len(v) > 100:
        return f"{v[:100]!r}... ({len(v)} characters)"
    return repr(v)


def _range(f: Feature) -> str:
    low, high = bounds(f)
    shown = f"{f.min if low == f.min else -LIMIT} to {f.max if high == f.max else LIMIT}"
    if low != f.min or high != f.max:
        shown += " (no number beyond float32's range, +-3.4e38, reaches a model; declare min and max to bound it)"
    return shown


class RowEncoder:
    """Compiled validator and encoder for one config set's inputs."""

    def __init__(self, config: ServiceConfig) -> None:
        one_hot = config.preprocessing.one_hot
        self.features = config.inputs
        self.names = frozenset(f.name for f in config.inputs)
        self.columns: list[str] = []
        self.scaled: list[bool] = []
        self._plan: list[tuple[Feature, Converter, Any]] = []
        self._spans: dict[str, range] = {}
        for f in config.inputs:
            col = len(self.columns)
            if f.type == "category" and one_hot:
                self.columns += [f"{f.name}={v}" for v in f.values or ()]
                self.scaled += [False] * len(f.values or ())
                converter = _category_converter(f, col, True)
            else:
                self.columns.append(f.name)
                self.scaled.append(f.type in ("number", "integer"))
                if f.type == "category":
                    converter = _category_converter(f, col, False)
                elif f.type == "boolean":
                    converter = _boolean_converter(f, col)
                else:
                    converter = _number_converter(f, col)
            self._spans[f.name] = range(col, len(self.columns))
            self._plan.append((f, converter, _MISSING if f.default is None else f.default))
        self.width = len(self.columns)
        self._blank = [0.0] * self.width
        self._fast = self._compile(one_hot)

    def _compile(self, one_hot: bool) -> FastRows | None:
        """The generated happy path (mlrm.core.rowcode), or None if a default is itself invalid."""
        plan = []
        for f, convert, default in self._plan:
            encoded = None
            if default is not _MISSING:
                encoded = self._blank.copy()
                if convert(default, encoded):
                    return None
            plan.append((f, self._spans[f.name], default, encoded))
        return compile_rows(plan, self.width, one_hot)

    def span(self, name: str) -> range:
        """The matrix columns of one input (several for a one-hot category)."""
        return self._spans[name]

    def encode(self, rows: Any, pointer: str = "/instances") -> np.ndarray:
        """Rows (list of mappings) -> n x width matrix; any bad value, or no row at all, raises RequestError."""
        # The OpenAPI document says minItems 1: an empty answer would hide a client's bug.
        if isinstance(rows, list) and not rows:
            raise RequestError("Invalid input", 422, errors=[FieldError(pointer, "expected at least one instance")])
        return self._encode(rows, pointer, strings=False, collect=False)[0]

    def encode_collect(
        self, rows: Any, pointer: str = "/rows", *, strings: bool = False
    ) -> tuple[np.ndarray, list[FieldError], list[int]]:
        """Like encode, but bad rows are reported and left out: (matrix, errors, kept row indices)."""
        return self._encode(rows, pointer, strings=strings, collect=True)

    def _encode(
        self, rows: Any, pointer: str, *, strings: bool, collect: bool
    ) -> tuple[np.ndarray, list[FieldError], list[int]]:
        if not isinstance(rows, list):
            raise RequestError("Invalid input", 422, errors=[FieldError(pointer, "expected an array of objects")])
        fast = None if strings or self._fast is None else self._fast(rows)
        if fast is not None:
            return np.array(fast, dtype=np.float64).reshape(len(fast), self.width), [], list(range(len(fast)))
        matrix: list[list[float]] = []
        errors: list[FieldError] = []
        kept: list[int] = []
        for i, row in enumerate(rows):
            row_errors = self._row(row, f"{pointer}/{i}", matrix, strings)
            if row_errors:
                errors.extend(row_errors)
                if not collect and len(errors) >= MAX_ERRORS:
                    break
            else:
                kept.append(i)
        if errors and not collect:
            raise RequestError("Invalid input", 422, errors=errors[:MAX_ERRORS])
        return np.array(matrix, dtype=np.float64).reshape(len(matrix), self.width), errors, kept

    def _row(self, row: Any, at: str, matrix: list[list[float]], strings: bool) -> list[FieldError]:
        if type(row) is not dict:
            return [FieldError(at, f"expected an object of feature values, got {_shown(row)}")]
        errors: list[FieldError] = []
        extra = row.keys() - self.names
        if extra:
            # The first unknown key only: a body of 90,000 of them must not cost 90,000 suggestions.
            key = min(extra)
            more = f" (and {len(extra) - 1} more unknown features)" if len(extra) > 1 else ""
            errors.append(FieldError(f"{at}/{key}", f"unknown feature '{key}'{more}.{did_you_mean(key, self.names)}"))
        out = self._blank.copy()
        for f, convert, default in self._plan:
            v = row.get(f.name, _MISSING)
            if strings and type(v) is str:
                v = _parse_string(f.type, v)
            if v is None or v is _MISSING:
                if default is not _MISSING:
                    v = default
                elif f.required:
                    errors.append(FieldError(f"{at}/{f.name}", f"missing required feature '{f.name}' ({f.type})"))
                    continue
                else:
                    self._nan(f, out)
                    continue
            message = convert(v, out)
            if message:
                errors.append(FieldError(f"{at}/{f.name}", message))
        if not errors:
            matrix.append(out)
        return errors

    def _nan(self, f: Feature, out: list[float]) -> None:
        for c in self._spans[f.name]:
            out[c] = math.nan


class TargetEncoder:
    """Checks and encodes target values: labels to codes, or floats."""

    def __init__(self, config: ServiceConfig) -> None:
        self.target = config.target
        labels = self.target.labels if self.target else ()
        self.codes = {str(v): i for i, v in enumerate(labels)}
        self.labels = list(labels)

    def encode_one(self, value: Any) -> tuple[float, str | None]:
        assert self.target is not None
        if value is None or value == "":
            return 0.0, f"missing target '{self.target.name}'"
        if self.target.kind == "classification":
            code = self.codes.get(str(value).strip() if isinstance(value, str) else str(value))
            if code is None:
                return 0.0, f"unknown label {value!r}: expected one of {', '.join(map(str, self.labels))}"
            return float(code), None
        try:
            x = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            return 0.0, f"expected a number for target '{self.target.name}', got {value!r}"
        if not math.isfinite(x):
            return 0.0, f"expected a finite number for target '{self.target.name}', got {value!r}"
        return x, None

    def decode(self, codes: np.ndarray) -> list[Any]:
        return [self.labels[int(c)] for c in codes]


class Preprocessor:
    """Learned imputation and scaling, stored as plain numbers (no pickle)."""

    def __init__(self, fill: np.ndarray, center: np.ndarray, scale: np.ndarray) -> None:
        self.fill, self.center, self.scale = fill, center, scale
        self._missing_possible = True

    @classmethod
    def fit(cls, X: np.ndarray, scaled: list[bool], missing: str, scaling: str) -> Preprocessor:
        with np.errstate(all="ignore"):
            if missing == "median":
                fill = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
            elif missing == "zero":
                fill = np.zeros(X.shape[1])
            else:
                fill = np.nanmean(X, axis=0) if len(X) else np.zeros(X.shape[1])
        fill = np.nan_to_num(fill)
        Xf = np.where(np.isnan(X), fill, X)
        center, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        mask = np.array(scaled, dtype=bool)
        if scaling == "standard" and len(X):
            center[mask] = Xf.mean(axis=0)[mask]
            scale[mask] = Xf.std(axis=0)[mask]
        elif scaling == "minmax" and len(X):
            center[mask] = Xf.min(axis=0)[mask]
            scale[mask] = (Xf.max(axis=0) - Xf.min(axis=0))[mask]
        scale[scale == 0] = 1.0
        return cls(fill, center, scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if np.isnan(X).any():
            X = np.where(np.isnan(X), self.fill, X)
        return (X - self.center) / self.scale

    def to_dict(self) -> dict[str, list[float]]:
        return {"fill": self.fill.tolist(), "center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Preprocessor:
        return cls(*(np.asarray(data[k], dtype=np.float64) for k in ("fill", "center", "scale")))
