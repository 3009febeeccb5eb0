"""Predict from a fitted estimator's arrays, without scikit-learn's per-call checks.

scikit-learn spends most of a one-row predict validating its input (about
250 µs for a logistic regression whose arithmetic takes 1 µs) and, for a
forest, dispatching every tree through joblib (milliseconds). mlrm has
already validated and encoded every value, so a compiled predictor reads the
fitted arrays once at load time and does only the arithmetic per call.

Each predictor returns (class indices or values, probabilities or None) in
the estimator's own `classes_` order and reproduces its arithmetic in the
same order: labels are identical and probabilities agree within 1e-9 (the
conformance test checks both over every algorithm). `compile_predictor`
answers None for an estimator or setting it does not cover; the adapter then
calls the estimator itself. A predictor answers None for rows it must not
judge (a non-finite value, a near tie between neighbours), and the adapter
asks the estimator for those calls too. Trees, forests, isolation forests and
gradient boosting live in mlrm.algorithms.forest; the rest here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit

from mlrm.algorithms import forest
from mlrm.algorithms.predictor import Output, Predictor
from mlrm.algorithms.predictor import finite as _finite


def compile_predictor(estimator: Any) -> Predictor | None:
    """A fast predictor for a fitted estimator, or None where the estimator must answer itself."""
    kind = type(estimator).__name__
    builder = _BUILDERS.get(kind)
    if builder is None or getattr(estimator, "n_outputs_", 1) != 1:
        return None
    return builder(estimator)


# Linear models ---------------------------------------------------------------


def _linear_classifier(est: Any) -> Predictor | None:
    # The same operands as scikit-learn's decision_function (X @ coef_.T + intercept_).
    coef = np.asarray(est.coef_, dtype=np.float64).T
    intercept = np.asarray(est.intercept_, dtype=np.float64)
    n_classes = len(est.classes_)
    kind = type(est).__name__
    loss = getattr(est, "loss", "log_loss")
    if kind == "SGDClassifier" and loss not in ("log_loss", "hinge", "squared_hinge", "perceptron"):
        return None  # modified_huber's probabilities and the regression losses: let the estimator answer
    probabilities = kind == "LogisticRegression" or loss == "log_loss"
    # LogisticRegression: softmax over classes when there are more than two;
    # SGDClassifier (and binary LogisticRegression): one-vs-rest sigmoids, normalised.
    softmax = kind == "LogisticRegression" and n_classes > 2

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None  # NaN or inf in X: the estimator's error (and no warning from inf * 0 here)
        # An overflow (finite X past 1e300) gives inf or NaN scores here exactly as in scikit-learn,
        # which goes on with them through the same operations below: no second check needed.
        scores = X @ coef + intercept
        if scores.shape[1] == 1:
            scores = scores.ravel()
            indices = (scores > 0).astype(np.int64)
        else:
            indices = scores.argmax(axis=1)
        if not probabilities:
            return indices, None
        if softmax:
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
            return indices, scores
        prob = expit(scores)
        if prob.ndim == 1:
            return indices, np.stack([1 - prob, prob], axis=1)
        total = prob.sum(axis=1)
        zero = total == 0
        if zero.any():
            prob[zero, :] = 1
            total[zero] = prob.shape[1]
        prob /= total.reshape(prob.shape[0], -1)
        return indices, prob

    return predict


def _linear_regressor(est: Any) -> Predictor | None:
    coef = np.asarray(est.coef_, dtype=np.float64)
    intercept = np.asarray(est.intercept_, dtype=np.float64)
    if coef.ndim != 1:
        return None

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        return X @ coef.T + intercept, None

    return predict


# Naive Bayes -------------------------------------------------------------------


def _gaussian_nb(est: Any) -> Predictor | None:
    theta = np.asarray(est.theta_, dtype=np.float64)
    var = np.asarray(est.var_, dtype=np.float64)
    prior = np.asarray(est.class_prior_, dtype=np.float64)
    # Per class, as scikit-learn adds them: log prior + (normaliser - distance).
    log_prior = np.log(prior)
    normaliser = np.array([-0.5 * np.sum(np.log(2.0 * np.pi * v)) for v in var])

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        distance = 0.5 * np.sum((X[:, None, :] - theta) ** 2 / var, axis=2)
        jll = log_prior + (normaliser - distance)
        top = jll.max(axis=1).reshape(-1, 1)
        log_px = np.log(np.sum(np.exp(jll - top), axis=1)).reshape(-1, 1) + top
        return jll.argmax(axis=1), np.exp(jll - log_px)

    return predict


# Nearest neighbours ------------------------------------------------------------


def _knn(est: Any) -> Predictor | None:
    metric = getattr(est, "effective_metric_", None)
    weights = getattr(est, "weights", None)
    if metric != "euclidean" or weights not in ("uniform", "distance"):
        return None
    fit_X = np.asarray(est._fit_X, dtype=np.float64)
    y = np.asarray(est._y)
    k = int(est.n_neighbors)
    if k >= len(fit_X) or y.ndim != 1:
        return None
    classifier = hasattr(est, "classes_")
    n_classes = len(getattr(est, "classes_", ()))
    fit_sq = np.einsum("ij,ij->i", fit_X, fit_X)

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        d2 = fit_sq - 2.0 * (X @ fit_X.T) + np.einsum("ij,ij->i", X, X).reshape(-1, 1)
        nearest = np.argpartition(d2, k, axis=1)
        rows = np.arange(len(X)).reshape(-1, 1)
        kth = np.take_along_axis(d2, nearest[:, : k + 1], axis=1)
        inside, outside = kth[:, :k].max(axis=1), kth[:, k]
        # The neighbour set is only certain when the k-th and (k+1)-th
        # distances are clearly apart; otherwise scikit-learn decides.
        if np.any(outside - inside <= 1e-9 * np.maximum(1.0, np.abs(outside))):
            return None
        idx = nearest[:, :k]
        labels = y[idx]
        if weights == "uniform":
            w = np.ones(idx.shape)
        else:
            dist = np.sqrt(np.maximum(d2[rows, idx], 0.0))
            if np.any(dist < 1e-6):
                return None  # zero distances get scikit-learn's special weights
            w = 1.0 / dist
        if not classifier:
            out = (labels * w).sum(axis=1) / w.sum(axis=1)
            return out, None
        proba = np.zeros((len(X), n_classes))
        for c in range(n_classes):
            proba[:, c] = (w * (labels == c)).sum(axis=1)
        proba /= proba.sum(axis=1).reshape(-1, 1)
        return proba.argmax(axis=1), proba

    return predict


_BUILDERS: dict[str, Callable[[Any], Predictor | None]] = {
    "LogisticRegression": _linear_classifier,
    "SGDClassifier": _linear_classifier,
    "LinearRegression": _linear_regressor,
    "Ridge": _linear_regressor,
    "SGDRegressor": _linear_regressor,
    "DecisionTreeClassifier": forest.tree_classifier,
    "DecisionTreeRegressor": forest.tree_regressor,
    "RandomForestClassifier": forest.forest_classifier,
    "RandomForestRegressor": forest.forest_regressor,
    "GaussianNB": _gaussian_nb,
    "KNeighborsClassifier": _knn,
    "KNeighborsRegressor": _knn,
    "IsolationForest": forest.isolation_forest,
    "HistGradientBoostingClassifier": forest.boosting,
    "HistGradientBoostingRegressor": forest.boosting,
}
