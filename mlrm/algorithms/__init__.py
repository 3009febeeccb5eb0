"""The algorithm registry: short name -> adapter class.

Entries are listed here explicitly (no registration by import side effect).
Adapters that need an optional extra (torch) are named here by module and
class and imported only when a config set asks for them.
"""

from __future__ import annotations

import importlib

from mlrm.algorithms.base import Algorithm, Hyperparameter, Prediction, Progress, Task, no_progress
from mlrm.algorithms.sklearn import SKLEARN_ALGORITHMS

__all__ = ["Algorithm", "Hyperparameter", "Prediction", "Progress", "Task", "no_progress", "names", "get", "task_of"]

_EAGER: dict[str, type[Algorithm]] = {klass.name: klass for klass in SKLEARN_ALGORITHMS}

# name -> (module, class, task, extra): imported lazily, only when used.
_LAZY: dict[str, tuple[str, str, Task, str]] = {}


def names() -> list[str]:
    """Every registered short name, sorted."""
    return sorted([*_EAGER, *_LAZY])


def task_of(name: str) -> Task:
    """The task of an algorithm without importing optional extras."""
    if name in _LAZY:
        return _LAZY[name][2]
    return _EAGER[name].task


def requirement_of(name: str) -> str | None:
    """The optional extra an algorithm needs ("torch"), or None."""
    return _LAZY[name][3] if name in _LAZY else None


def get(name: str) -> type[Algorithm]:
    """The adapter class for a short name (KeyError if unknown)."""
    if name in _EAGER:
        return _EAGER[name]
    module, class_name, _task, _extra = _LAZY[name]
    return getattr(importlib.import_module(module), class_name)  # type: ignore[no-any-return]
