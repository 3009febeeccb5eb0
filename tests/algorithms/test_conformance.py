"""One suite over every registry entry: fit, predict, dump, load, same output."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mlrm import algorithms


def small_data(task: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 5))
    if task == "classification":
        y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
        return X, y, 3
    if task == "regression":
        return X, X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + rng.normal(0, 0.1, 120), None
    return X, None, None


def needs(name: str) -> list[pytest.MarkDecorator]:
    extra = algorithms.requirement_of(name)
    if extra is None:
        return []
    missing = importlib.util.find_spec(extra) is None
    return [getattr(pytest.mark, extra), pytest.mark.skipif(missing, reason=f"needs the {extra} extra")]


ENTRIES = [pytest.param(name, marks=needs(name), id=name) for name in algorithms.names()]


@pytest.mark.parametrize("name", ENTRIES)
def test_fit_predict_dump_load_gives_identical_output(name: str) -> None:
    adapter = algorithms.get(name)
    assert adapter.name == name
    assert adapter.task == algorithms.task_of(name)
    assert adapter.check({}) == []
    X, y, n_classes = small_data(adapter.task)
    if getattr(adapter, "sequence", False):
        pytest.skip("sequence adapters take windows: covered by their own conformance test")
    model = adapter().fit(X, y, n_classes=n_classes, seed=3)
    before = model.predict(X[:17])
    assert len(before.values) == 17
    if adapter.task == "classification" and before.probabilities is not None:
        assert before.probabilities.shape == (17, n_classes)
        np.testing.assert_allclose(before.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    if adapter.task == "anomaly":
        assert before.scores is not None and set(np.unique(before.values)) <= {0, 1}
    files = model.dump()
    assert files and all(isinstance(v, bytes) for v in files.values())
    fresh = adapter()
    fresh.load(files)
    after = fresh.predict(X[:17])
    np.testing.assert_array_equal(before.values, after.values)
    for a, b in ((before.probabilities, after.probabilities), (before.scores, after.scores)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ENTRIES)
def test_unknown_or_badly_typed_hyperparameter_is_named(name: str) -> None:
    adapter = algorithms.get(name)
    known = adapter.hyperparameters()
    assert known, f"{name} declares no hyperparameters"
    key = next(iter(known))
    problems = adapter.check({key: object()})
    assert problems and problems[0][0] == key


def test_registry_has_the_promised_scikit_learn_entries() -> None:
    promised = {
        "logistic_regression", "linear_regression", "ridge", "sgd_classifier", "sgd_regressor",
        "random_forest_classifier", "random_forest_regressor", "hist_gradient_boosting_classifier",
        "hist_gradient_boosting_regressor", "knn_classifier", "svc", "gaussian_nb", "isolation_forest",
    }  # fmt: skip
    assert promised <= set(algorithms.names())
