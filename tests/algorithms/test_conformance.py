"""One suite over every registry entry: fit, predict, dump, load, same output."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mlrm import algorithms
from mlrm.algorithms.sklearn import SKLEARN_ALGORITHMS


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


# Entries whose predict runs from the fitted arrays (mlrm.algorithms.compiled).
COMPILED = {
    "logistic_regression", "linear_regression", "ridge", "sgd_classifier", "sgd_regressor",
    "decision_tree_classifier", "decision_tree_regressor", "random_forest_classifier",
    "random_forest_regressor", "gaussian_nb", "knn_classifier", "knn_regressor", "isolation_forest",
    "hist_gradient_boosting_classifier", "hist_gradient_boosting_regressor",
}  # fmt: skip

# Settings that take other branches of a compiled predictor: (name, hyperparameters, n_classes, compiled).
VARIANTS: list[tuple[str, dict[str, object], int | None, bool]] = [
    ("logistic_regression", {}, 2, True),
    ("logistic_regression", {"C": 0.01}, 4, True),  # a label code the training data lacks
    ("sgd_classifier", {"loss": "hinge"}, 3, True),
    ("sgd_classifier", {"loss": "modified_huber"}, 3, False),
    ("sgd_classifier", {}, 2, True),
    ("random_forest_classifier", {"n_estimators": 7, "max_depth": 3}, 2, True),
    ("random_forest_classifier", {"n_estimators": 30, "min_samples_leaf": 3}, 4, True),
    ("random_forest_regressor", {"n_estimators": 9, "max_depth": None}, None, True),
    ("isolation_forest", {"max_features": 0.6, "n_estimators": 25}, None, True),  # trees on column subsets
    ("hist_gradient_boosting_classifier", {"max_iter": 30}, 2, True),  # one raw score: sigmoid
    ("hist_gradient_boosting_classifier", {"max_iter": 40, "max_depth": 3}, 4, True),
    ("hist_gradient_boosting_regressor", {"loss": "absolute_error", "max_iter": 20}, None, True),
    ("isolation_forest", {"max_samples": 40, "contamination": 0.2}, None, True),
    ("knn_classifier", {"weights": "distance", "n_neighbors": 7}, 3, True),
    ("knn_regressor", {"weights": "distance"}, None, True),
    ("knn_classifier", {"metric": "manhattan"}, 3, False),
    ("gaussian_nb", {}, 2, True),
]


def fitted(name: str, params: dict[str, object], n_classes: int | None) -> algorithms.Algorithm:
    adapter = algorithms.get(name)
    X, y, _ = small_data(adapter.task)
    if y is not None and n_classes == 2:
        y = (y > 0).astype(np.int64)
    return adapter(**params).fit(X, y, n_classes=n_classes, seed=5)


def assert_same(fast: algorithms.Prediction, reference: algorithms.Prediction) -> None:
    if fast.values.dtype.kind == "f":
        np.testing.assert_allclose(fast.values, reference.values, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_array_equal(fast.values, reference.values)
        assert fast.values.dtype == reference.values.dtype
    assert (fast.probabilities is None) == (reference.probabilities is None)
    if fast.probabilities is not None:
        assert reference.probabilities is not None  # the assert above: both or neither
        np.testing.assert_allclose(fast.probabilities, reference.probabilities, rtol=0, atol=1e-9)
    assert (fast.scores is None) == (reference.scores is None)
    if fast.scores is not None:
        assert reference.scores is not None
        np.testing.assert_allclose(fast.scores, reference.scores, rtol=1e-12, atol=0)


SKLEARN = [klass.name for klass in SKLEARN_ALGORITHMS]
CASES = [
    pytest.param(n, {}, 3 if algorithms.task_of(n) == "classification" else None, n in COMPILED, id=n) for n in SKLEARN
]
CASES += [
    pytest.param(*v, id="-".join([v[0], *(f"{a}={b}" for a, b in v[1].items()), f"{v[2]}classes"])) for v in VARIANTS
]


@pytest.mark.parametrize(("name", "params", "n_classes", "compiled"), CASES)
def test_fast_predict_equals_the_estimators_own(
    name: str, params: dict[str, object], n_classes: int | None, compiled: bool
) -> None:
    model = fitted(name, params, n_classes)
    assert (getattr(model, "fast", None) is not None) == compiled
    rng = np.random.default_rng(11)
    for rows in (1, 2, 32, 64, 500):  # 32: the most rows gradient boosting walks itself
        X = rng.normal(size=(rows, 5)) * rng.choice([0.1, 1.0, 4.0])
        assert_same(model.predict(X), model.reference_predict(X))  # type: ignore[attr-defined]
    X, _, _ = small_data(model.task)
    assert_same(model.predict(X), model.reference_predict(X))  # type: ignore[attr-defined]


# These take NaN and inf themselves: each split learned a side for missing values.
TAKE_MISSING = {"isolation_forest", "hist_gradient_boosting_classifier", "hist_gradient_boosting_regressor"}


@pytest.mark.parametrize("name", sorted(COMPILED - TAKE_MISSING))
def test_non_finite_rows_go_to_the_estimator(name: str) -> None:
    model = fitted(name, {}, 3 if algorithms.task_of(name) == "classification" else None)
    X = np.ones((2, 5))
    X[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.predict(X)


def test_isolation_forest_flags_equal_its_own_predict() -> None:
    """The adapter scores once and derives the flags; they must be the estimator's predict."""
    model = fitted("isolation_forest", {}, None)
    X = np.random.default_rng(3).normal(size=(500, 5)) * 3
    answer = model.predict(X)
    est = model.estimator  # type: ignore[attr-defined]
    np.testing.assert_array_equal(answer.values, (est.predict(X) == -1).astype(np.int64))
    assert answer.scores is not None
    np.testing.assert_array_equal(answer.scores, -est.score_samples(X))
    assert 0 < answer.values.sum() < len(X)  # both outcomes occur


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_boosting_labels_from_one_pass_equal_its_own_predict(n_classes: int) -> None:
    """Labels read off predict_proba (one pass over the trees) must be the estimator's predict."""
    from mlrm.algorithms.forest import BOOSTING_MAX_ROWS

    model = fitted("hist_gradient_boosting_classifier", {"max_iter": 20}, n_classes)
    X = np.random.default_rng(4).normal(size=(2000, 5)) * 2
    est = model.estimator  # type: ignore[attr-defined]
    np.testing.assert_array_equal(model.predict(X).values, est.predict(X).astype(np.int64))  # the estimator's path
    step = BOOSTING_MAX_ROWS  # and the compiled one, batch by batch
    fast = np.concatenate([model.predict(X[i : i + step]).values for i in range(0, len(X), step)])
    np.testing.assert_array_equal(fast, est.predict(X).astype(np.int64))


def test_a_near_tie_in_probabilities_is_asked_of_the_estimator() -> None:
    from mlrm.algorithms.sklearn import _labels_from

    model = fitted("hist_gradient_boosting_classifier", {"max_iter": 5}, 3)
    est = model.estimator  # type: ignore[attr-defined]
    X = np.random.default_rng(5).normal(size=(2, 5))
    tied = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])  # row 0: a tie the argmax must not settle
    labels = _labels_from(est, tied, X)
    assert labels[0] == est.predict(X[:1])[0]
    assert labels[1] == est.classes_[2]


@pytest.mark.parametrize("name", sorted(TAKE_MISSING))
def test_missing_values_are_answered_as_scikit_learn_does(name: str) -> None:
    """The compiled predictor hands rows with NaN or inf to the estimator, whose answer stands."""
    model = fitted(name, {}, 3 if algorithms.task_of(name) == "classification" else None)
    X = np.random.default_rng(8).normal(size=(6, 5))
    X[1, 2], X[4, 0] = np.nan, np.inf
    assert model.fast(X) is None  # type: ignore[attr-defined]
    answer, est = model.predict(X), model.estimator  # type: ignore[attr-defined]
    if name == "isolation_forest":
        np.testing.assert_array_equal(answer.values, (est.predict(X) == -1).astype(np.int64))
        np.testing.assert_array_equal(answer.scores, -est.score_samples(X))
    else:
        np.testing.assert_array_equal(answer.values, est.predict(X))


def test_a_large_batch_for_gradient_boosting_is_answered_by_the_estimator() -> None:
    from mlrm.algorithms.forest import BOOSTING_MAX_ROWS

    model = fitted("hist_gradient_boosting_regressor", {"max_iter": 10}, None)
    fast = model.fast  # type: ignore[attr-defined]
    X = np.random.default_rng(9).normal(size=(BOOSTING_MAX_ROWS + 1, 5))
    assert fast(X[:-1]) is not None and fast(X) is None
    assert_same(model.predict(X), model.reference_predict(X))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "n_classes"),
    [("logistic_regression", 2), ("logistic_regression", 3), ("sgd_classifier", 2), ("sgd_classifier", 3),
     ("linear_regression", None), ("ridge", None)],
)  # fmt: skip
def test_an_overflowing_row_gets_the_estimators_answer(name: str, n_classes: int | None) -> None:
    """Finite values so large that the scores overflow: the compiled predictor answers, and inf and
    NaN flow through its arithmetic exactly as through scikit-learn's."""
    model = fitted(name, {}, n_classes)
    X = np.random.default_rng(10).normal(size=(4, 5))
    X[1] = 1e308
    X[2, 0], X[2, 1] = 1e308, -1e308
    with np.errstate(all="ignore"):
        out, reference = model.fast(X), model.reference_predict(X)  # type: ignore[attr-defined]
        assert out is not None
        fast = model._prediction(*out)  # type: ignore[attr-defined]
        est = model.estimator  # type: ignore[attr-defined]
        scores = est.decision_function(X) if n_classes else est.predict(X)
    assert not np.isfinite(scores).all()  # the scores did overflow
    np.testing.assert_array_equal(fast.values, reference.values)
    assert (fast.probabilities is None) == (reference.probabilities is None)
    if fast.probabilities is not None:
        np.testing.assert_array_equal(fast.probabilities, reference.probabilities)


# Every scikit-learn entry at its defaults, and every variant above.
SAVED: list[tuple[str, dict[str, object], int | None]] = [
    (k.name, {}, 3 if k.task == "classification" else None) for k in SKLEARN_ALGORITHMS
]
SAVED += [(name, params, n_classes) for name, params, n_classes, _ in VARIANTS]


@pytest.mark.parametrize(("name", "params", "n_classes"), SAVED)
def test_every_setting_round_trips_in_a_format_that_cannot_run_code(
    name: str, params: dict[str, object], n_classes: int | None
) -> None:
    from mlrm.algorithms import artifacts, fitted_state

    model = fitted(name, params, n_classes)
    files = model.dump()
    assert set(files) == {fitted_state.STATE, fitted_state.ARRAYS}
    # JSON and a zip of .npy files that numpy reads with allow_pickle=False; no pickle (PROTO opcode 0x80).
    assert files[fitted_state.STATE][:1] == b"{" and files[fitted_state.ARRAYS][:2] == b"PK"
    # Versions saved before it (model.skops) still load, and answer alike.
    legacy = {"model.skops": artifacts.dumps(name, model.estimator, n_classes)}  # type: ignore[attr-defined]
    X, _, _ = small_data(algorithms.task_of(name))
    before = model.predict(X)
    for saved in (files, legacy):
        fresh = algorithms.get(name)(**params)
        fresh.load(saved)
        after = fresh.predict(X)
        np.testing.assert_array_equal(before.values, after.values)
        for a, b in ((before.probabilities, after.probabilities), (before.scores, after.scores)):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)
        # Where the compiled predictor hands a row back, the rebuilt estimator answers as the fitted one.
        reference, again = model.reference_predict(X), fresh.reference_predict(X)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(reference.values, again.values)
