"""Straight-line Python compiled from a config set's inputs: the happy path of RowEncoder.

RowEncoder checks a value by calling one small converter per feature. For a
request where every value is fine, this module does the same checks in one
generated function with no calls and no loop over features (about three
times faster). It only ever says yes or no: on the first value it does not
like, it answers None and RowEncoder runs its own per-value checks, which
name every problem. So the generated code may be stricter than RowEncoder
but never more lenient, and the messages come from one place;
tests/core/test_rowcode.py compares the two over random good and bad rows.

The generated source holds no text from the config set: feature names,
bounds and defaults are passed in as constants bound by position.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mlrm.config.service_config import Feature

# rows -> list of encoded rows, or None: let RowEncoder check (and explain) them.
FastRows = Callable[[list[Any]], "list[list[float]] | None"]

# The largest magnitude a number input may have, whatever its min and max say:
# float32's largest value. Tree models compare in float32, and no model's
# arithmetic (scaling, squares, dot products in float64) overflows from it, so
# a finite but extreme value is refused at the door instead of failing inside.
LIMIT = 3.4028234663852886e38


def bounds(f: Feature) -> tuple[float, float]:
    """The values a number input accepts: its min and max, within +-LIMIT."""
    low = -LIMIT if f.min is None else max(float(f.min), -LIMIT)
    high = LIMIT if f.max is None else min(float(f.max), LIMIT)
    return low, high


class _Source:
    """Lines of the generated function and the constants they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"K{len(self.constants)}"
        self.constants[name] = value
        return name

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def compile_rows(plan: list[tuple[Feature, range, Any, list[float] | None]], width: int, one_hot: bool) -> FastRows:
    """plan: per feature (feature, its columns, default or MISSING, the default's encoded columns or None)."""
    src = _Source()
    missing = src.const(object())
    columns: list[str] = ["0.0"] * width
    fixups: list[tuple[str, range]] = []
    for k, (f, span, _default, encoded) in enumerate(plan):
        v, out = f"v{k}", f"x{k}"
        src.add(2, f"{v} = row.get({src.const(f.name)}, {missing})")
        src.add(2, f"if {v} is {missing} or {v} is None:")
        src.add(3, f"if {v} is None: p += 1")
        multi = f.type == "category" and one_hot
        if encoded is not None:
            if multi:
                src.add(3, f"{out} = {encoded[span.start : span.stop].index(1.0)}")
            else:
                src.add(3, f"{out} = {src.const(encoded[span.start])}")
        elif f.required:
            src.add(3, "return None")
        else:
            src.add(3, f"{out} = None" if multi else f"{out} = NAN")
        src.add(2, "else:")
        src.add(3, "p += 1")
        _check(src, f, v, out, one_hot)
        if multi:
            fixups.append((out, span))
        else:
            columns[span.start] = out
    lines = ["def fast(rows):", "    out = []", "    for row in rows:"]
    lines += ["        if type(row) is not dict: return None", "        p = 0"]
    lines += src.lines
    lines += ["        if p != len(row): return None", f"        r = [{', '.join(columns)}]"]
    for out, span in fixups:
        lines.append(f"        if {out} is None: r[{span.start}:{span.stop}] = {src.const([math.nan] * len(span))}")
        lines.append(f"        else: r[{span.start} + {out}] = 1.0")
    lines += ["        out.append(r)", "    return out"]
    namespace: dict[str, Any] = {"NAN": math.nan, **src.constants}
    # Our own source: config values are only ever constants in the namespace.
    exec(compile("\n".join(lines), "<mlrm.core.rowcode>", "exec"), namespace)
    return namespace["fast"]  # type: ignore[no-any-return]


def _check(src: _Source, f: Feature, v: str, out: str, one_hot: bool) -> None:
    """Lines that accept a present value into `out`, or return None."""
    if f.type in ("number", "integer"):
        low, high = (src.const(b) for b in bounds(f))
        src.add(3, f"t = type({v})")
        src.add(3, f"if t is float: {out} = {v}")
        # Compared before float(): an int too large for a float compares exactly instead of raising.
        src.add(3, f"elif t is int and {low} <= {v} <= {high}: {out} = float({v})")
        src.add(3, "else: return None")
        src.add(3, f"if not {low} <= {out} <= {high}: return None")  # also NaN
        if f.type == "integer":
            src.add(3, f"if not {out}.is_integer(): return None")
    elif f.type == "boolean":
        src.add(3, f"if {v} is True: {out} = 1.0")
        src.add(3, f"elif {v} is False: {out} = 0.0")
        src.add(3, "else: return None")
    else:
        values = f.values or ()
        index = {val: i for i, val in enumerate(values)}
        index.update({str(val): i for i, val in enumerate(values)})
        table = src.const(index)
        src.add(3, f"t = type({v})")
        src.add(3, f"i = {table}.get({v}) if t is str or t is int or t is float else None")
        src.add(3, "if i is None: return None")
        src.add(3, f"{out} = i" if one_hot else f"{out} = float(i)")
