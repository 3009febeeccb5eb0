"""Wait for an event with a deadline, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T | None | Literal[False]], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll check() until it returns something truthy, and return that; TimeoutError naming `what` otherwise.

    A check that raises OSError (a file not written yet, a port not open yet) counts as not yet.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except OSError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not {what} after {timeout}s (last: {last!r})")
        time.sleep(interval)
