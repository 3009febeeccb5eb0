"""The generated happy path accepts exactly the rows RowEncoder accepts, encoded the same."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlrm.config import load_config_set
from mlrm.core.encoding import RowEncoder
from mlrm.errors import RequestError

SERVICE = """
name: every-kind
inputs:
  bounded: {type: number, min: -5, max: 5}
  free: {type: number}
  count: {type: integer, min: 0}
  with_default: {type: number, min: 0, max: 10, default: 2.5}
  optional: {type: number, required: false}
  flag: {type: boolean}
  mode: {type: category, values: [idle, run, 3]}
  mode_default: {type: category, values: [a, b], default: b}
  mode_optional: {type: category, values: [x, y], required: false}
target: {name: y, kind: regression}
algorithm: {name: ridge}
preprocessing: {one_hot: ONE_HOT}
"""

# Beside the good values (the first three of each pool): float32's largest value, the bound of
# every number input (accepted), the next float up and ints past it (refused), one too large for
# a float at all (float() would raise).
BIG = 3.4028234663852886e38
POOLS: dict[str, list[Any]] = {
    "bounded": [0, 4.5, -5, 5, 5.0001, -7, "1", True, None, math.nan, [1]],
    "free": [
        -3,
        0.5,
        BIG,
        -BIG,
        math.nextafter(BIG, math.inf),
        1e300,
        -(10**39),
        10**400,
        math.inf,
        -math.inf,
        math.nan,
        "x",
        False,
        {},
    ],  # fmt: skip
    "count": [0, 3, 3.0, 2.5, -1, True, "4", None, int(BIG), int(BIG) + 1, 10**400, 1e300],
    "with_default": [1, 9.5, 11, None, "2"],
    "optional": [1.5, None, "a"],
    "flag": [True, False, 1, 0, "true", None],
    "mode": ["idle", "run", 3, "3", 3.0, "walk", True, None, ["run"], {"a": 1}],
    "mode_default": ["a", "b", "c", None],
    "mode_optional": ["x", "y", None, 1],
}


def encoder(tmp_path: Path, one_hot: bool) -> RowEncoder:
    (tmp_path / "service.yaml").write_text(SERVICE.replace("ONE_HOT", str(one_hot).lower()))
    return RowEncoder(load_config_set(tmp_path))


def random_row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, pool in POOLS.items():
        if rng.random() < 0.9:
            row[name] = rng.choice(pool[:3] if rng.random() < 0.7 else pool)
    if rng.random() < 0.05:
        row["bounde"] = 1
    return row


def slow(enc: RowEncoder, rows: list[Any]) -> np.ndarray | None:
    fast, enc._fast = enc._fast, None
    try:
        return enc.encode(rows)
    except RequestError:
        return None
    finally:
        enc._fast = fast


@pytest.mark.parametrize("one_hot", [True, False])
def test_fast_and_checked_paths_agree_on_random_rows(tmp_path: Path, one_hot: bool) -> None:
    enc = encoder(tmp_path, one_hot)
    assert enc._fast is not None
    rng = random.Random(5)
    accepted = 0
    for _ in range(3000):
        row = random_row(rng)
        expected = slow(enc, [row])
        got = enc._fast([row])
        assert (got is None) == (expected is None), row
        if got is not None:
            accepted += 1
            np.testing.assert_array_equal(np.array(got), expected)
    assert 100 < accepted < 2900  # both kinds of row were tried


def test_one_bad_row_sends_the_whole_request_to_the_checked_path(tmp_path: Path) -> None:
    enc = encoder(tmp_path, True)
    good = {"bounded": 1, "free": 2, "count": 3, "flag": True, "mode": "run"}
    assert enc._fast is not None and enc._fast([good, good]) is not None
    assert enc._fast([good, {**good, "count": -1}]) is None
    with pytest.raises(RequestError) as caught:
        enc.encode([good, {**good, "count": -1}, "row"])
    assert [e.pointer for e in caught.value.errors] == ["/instances/1/count", "/instances/2"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(BIG, True), (-BIG, True), (int(BIG), True), (math.nextafter(BIG, math.inf), False), (int(BIG) + 1, False),
     (-1e300, False), (10**400, False)],
)  # fmt: skip
def test_both_paths_bound_numbers_by_float32s_range(tmp_path: Path, value: float, accepted: bool) -> None:
    enc = encoder(tmp_path, True)
    row = {"bounded": 1, "free": value, "count": 3, "flag": True, "mode": "run"}
    assert enc._fast is not None
    assert (enc._fast([row]) is not None) == accepted
    assert (slow(enc, [row]) is not None) == accepted


def test_a_value_past_the_bound_is_named_with_the_bound_and_the_fix(tmp_path: Path) -> None:
    enc = encoder(tmp_path, True)
    row = {"bounded": 1, "free": 1e300, "count": 10**400, "flag": True, "mode": "run"}
    with pytest.raises(RequestError) as caught:
        enc.encode([row])
    details = {e.pointer: e.detail for e in caught.value.errors}
    assert details["/instances/0/free"] == (
        "1e+300 is out of range: expected -3.4028234663852886e+38 to 3.4028234663852886e+38 (no number beyond "
        "float32's range, +-3.4e38, reaches a model; declare min and max to bound it)"
    )
    assert details["/instances/0/count"].startswith("an integer of about 401 digits is out of range: expected 0 to ")
