"""Every error mlrm raises on purpose, and how each is shown to a person.

Config errors name the file, line, key path and the fix; request errors
become one RFC 9457 problem body naming the field by JSON pointer.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' (or 'x' or 'y') for the closest choices, or ''."""
    word, options = str(word), [str(c) for c in choices]
    close = [c for c in options if c.startswith(word) and c != word][:3]
    close = close or difflib.get_close_matches(word, options, n=2, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class MlrmError(Exception):
    """Base of every error mlrm raises deliberately."""


@dataclass
class ConfigProblem:
    """One problem in a config set: where it is, what is wrong, how to fix it."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(MlrmError):
    """A config set (or manifest) that cannot be used, with every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in config:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


@dataclass
class FieldError:
    """One bad field in a request, by JSON pointer."""

    pointer: str
    detail: str
    line: int | None = None  # where a CSV body has the problem

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pointer": self.pointer, "detail": self.detail}
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class RequestError(MlrmError):
    """A request that cannot be answered as sent (4xx)."""

    title: str
    status: int = 422
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    kind: str = "invalid-request"

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem body (plus 'error' for Open Inference Protocol clients)."""
        detail = (
            self.detail
            or "; ".join(f"{e.pointer}: {e.detail}" if e.pointer else e.detail for e in self.errors)
            or self.title
        )
        body: dict[str, Any] = {
            "type": f"https://mlrm.dev/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": detail,
            "error": detail,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        return body


class NotReadyError(RequestError):
    """The service has no usable learned state yet (503)."""

    def __init__(self, detail: str) -> None:
        super().__init__(title="Model not ready", status=503, detail=detail, kind="not-ready")


class NotFoundError(RequestError):
    """A named thing (model, version, job) does not exist (404)."""

    def __init__(self, detail: str) -> None:
        super().__init__(title="Not found", status=404, detail=detail, kind="not-found")


class StateError(MlrmError):
    """Learned state that is missing, corrupt, or fails its digest check."""


class DataError(MlrmError):
    """Training data that cannot be used (bad file, too few rows, bad rows)."""


class StoreError(MlrmError):
    """A training-service store that cannot be opened or used (bad URL, unsupported backend)."""


class RemoteError(MlrmError):
    """Another mlrm service could not be reached (status None) or answered with a problem."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TrainingError(MlrmError):
    """A fit that cannot go on: the loss diverged, or the asked-for device is missing."""
