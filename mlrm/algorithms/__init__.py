"""The algorithm registry: short name -> adapter class.

Entries are listed here explicitly (no registration by import side effect).
Adapters that need an optional extra (torch) are named here by module and
class and imported only when a config set asks for them.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlrm.algorithms.base import Algorithm, Hyperparameter, Prediction, Progress, Task, no_progress
from mlrm.algorithms.sklearn import SKLEARN_ALGORITHMS

__all__ = ["Algorithm", "Hyperparameter", "Prediction", "Progress", "Task", "no_progress", "names", "get", "task_of",
           "takes_windows", "hyperparameters", "reserved", "check"]  # fmt: skip

_EAGER: dict[str, type[Algorithm]] = {klass.name: klass for klass in SKLEARN_ALGORITHMS}

# name -> (module, class, task, extra): imported lazily, only when used.
_NETS, _DBN = "mlrm.algorithms.torch_nets", "mlrm.algorithms.dbn"
_LAZY: dict[str, tuple[str, str, Task, str]] = {
    "mlp_classifier": (_NETS, "MLPClassifier", "classification", "torch"),
    "mlp_regressor": (_NETS, "MLPRegressor", "regression", "torch"),
    "lstm_classifier": (_NETS, "LSTMClassifier", "classification", "torch"),
    "gru_classifier": (_NETS, "GRUClassifier", "classification", "torch"),
    "lstm_forecaster": (_NETS, "LSTMForecaster", "regression", "torch"),
    "gru_forecaster": (_NETS, "GRUForecaster", "regression", "torch"),
    "cnn1d_classifier": (_NETS, "CNN1DClassifier", "classification", "torch"),
    "dbn_classifier": (_DBN, "DBNClassifier", "classification", "torch"),
    "autoencoder": (_NETS, "Autoencoder", "anomaly", "torch"),
}
# Adapters that take windows of records (n, window, features) rather than rows;
# known here so config checks need not import torch.
WINDOWED = frozenset({"lstm_classifier", "gru_classifier", "lstm_forecaster", "gru_forecaster", "cnn1d_classifier"})


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


def takes_windows(name: str) -> bool:
    """Whether an algorithm reads windows of records (needs a `sequence` section)."""
    return name in WINDOWED


def get(name: str) -> type[Algorithm]:
    """The adapter class for a short name (KeyError if unknown)."""
    if name in _EAGER:
        return _EAGER[name]
    module, class_name, _task, _extra = _LAZY[name]
    return getattr(importlib.import_module(module), class_name)  # type: ignore[no-any-return]


# Config checks: what an entry takes, without importing an optional extra.


def hyperparameters(name: str) -> dict[str, Hyperparameter]:
    """The hyperparameters an algorithm takes, by name."""
    if name in _EAGER:
        return _EAGER[name].hyperparameters()
    from mlrm.algorithms import torch_params

    return dict(torch_params.SPECS[name])


def reserved(name: str) -> dict[str, str]:
    """Hyperparameters mlrm sets itself for this algorithm: name -> the fix to tell the user."""
    if name in _EAGER:
        return dict(getattr(_EAGER[name], "reserved", {}))
    from mlrm.algorithms import torch_params

    return dict(torch_params.RESERVED)


def check(name: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(key or "", problem) for hyperparameters that are all known to the algorithm."""
    if name in _EAGER:
        return _EAGER[name].check(params)
    from mlrm.algorithms import torch_params

    return torch_params.check_params(name, params)
