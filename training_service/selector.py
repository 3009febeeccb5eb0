"""Which stored samples an admin means: by id range, batch, time or label.

One selector serves listing (query arguments), quarantine, release and delete
(a JSON body), so `mlrm samples` and the HTTP API read the same words. A
selector that changes samples must name something: an empty body is refused
rather than read as "every sample" (send {"all": true} for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlrm.errors import FieldError, RequestError

# SQLite's largest INTEGER: no stored id (sample, batch, job) is larger, and a larger one cannot be bound.
MAX_ID = 2**63 - 1
KEYS = ("ids", "batch", "since", "until", "label", "all")
EXAMPLE = '{"ids": "10-20"}, {"batch": 7}, {"until": "2025-05-01T00:00:00Z"}, {"label": "malignant"} or {"all": true}'


@dataclass(frozen=True)
class Selector:
    """Conditions that all hold for a selected sample (None: no condition)."""

    first_id: int | None = None
    last_id: int | None = None
    batch: int | None = None
    since: float | None = None  # unix time, inclusive
    until: float | None = None  # unix time, exclusive
    label: str | None = None

    @property
    def empty(self) -> bool:
        return self == Selector()

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _invalid(pointer: str, detail: str) -> RequestError:
    return RequestError("Invalid selector", 422, errors=[FieldError(pointer, detail)], kind="invalid-selector")


def _ids(value: Any, pointer: str) -> tuple[int, int]:
    if type(value) is int:
        return value, value
    text = str(value).strip() if isinstance(value, str) else ""
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise _invalid(pointer, f"expected a sample id or a range like '10-20', got {value!r}") from None
    if first > last or first < 1 or last > MAX_ID:
        raise _invalid(pointer, f"expected ids 1 to {MAX_ID} with the first <= the last, got {value!r}")
    return first, last


def _time(value: Any, pointer: str) -> float:
    if type(value) in (int, float):
        return float(value)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise _invalid(
            pointer, f"expected an ISO 8601 time like '2025-05-01T10:00:00Z' or unix seconds, got {value!r}"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _batch(value: Any, pointer: str) -> int:
    try:
        batch = int(value) if isinstance(value, str | int) and type(value) is not bool else 0
    except ValueError:
        batch = 0
    if not 1 <= batch <= MAX_ID:
        raise _invalid(pointer, f"expected a batch number >= 1 (the 'batch' of an ingest answer), got {value!r}")
    return batch


def parse(values: Any, *, query: bool = False) -> tuple[Selector, bool]:
    """(the selector, whether it asks for every sample); RequestError 422 naming the bad key."""
    prefix = "" if query else "/"
    if not isinstance(values, dict):
        raise _invalid("", f"expected an object such as {EXAMPLE}")
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise _invalid(f"{prefix}{unknown[0]}", f"unknown key; use one of {', '.join(KEYS)}")
    first = last = None
    if values.get("ids") is not None:
        first, last = _ids(values["ids"], f"{prefix}ids")
    everything = values.get("all", False)
    if query:
        everything = str(everything).lower() in ("1", "true", "yes")
    elif type(everything) is not bool:
        raise _invalid("/all", "expected true or false")
    selector = Selector(
        first_id=first, last_id=last,
        batch=None if values.get("batch") is None else _batch(values["batch"], f"{prefix}batch"),
        since=None if values.get("since") is None else _time(values["since"], f"{prefix}since"),
        until=None if values.get("until") is None else _time(values["until"], f"{prefix}until"),
        label=None if values.get("label") is None else str(values["label"]),
    )  # fmt: skip
    return selector, bool(everything)


def for_change(body: Any) -> Selector:
    """The selector of a quarantine, release or delete body: it must name something."""
    selector, everything = parse(body)
    if selector.empty and not everything:
        raise _invalid("", f"name the samples to change, e.g. {EXAMPLE}; an empty selector is never read as 'all'")
    return selector
