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
asks the estimator for those calls too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit

# (X) -> (indices into classes_ or regression values or anomaly flags, probabilities or anomaly scores or None),
# or None: ask the estimator.
Output = tuple[np.ndarray, "np.ndarray | None"]
Predictor = Callable[[np.ndarray], "Output | None"]


def compile_predictor(estimator: Any) -> Predictor | None:
    """A fast predictor for a fitted estimator, or None where the estimator must answer itself."""
    kind = type(estimator).__name__
    builder = _BUILDERS.get(kind)
    if builder is None or getattr(estimator, "n_outputs_", 1) != 1:
        return None
    return builder(estimator)


def _finite(X: np.ndarray) -> bool:
    return bool(np.isfinite(X).all())


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


# Trees and forests -------------------------------------------------------------


# One tree as arrays over its nodes: (is_leaf, feature, threshold, left, right, values nodes x outputs, depth).
Table = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


class _Forest:
    """Every tree of a forest in flat arrays, walked for all trees at once.

    A leaf points to itself with threshold +inf, so walking `depth` steps from
    the roots ends every path at its leaf. Rows are compared in `dtype`
    against float64 thresholds: float32 for scikit-learn's trees (as they
    cast X), float64 for histogram gradient boosting.
    """

    def __init__(self, tables: list[Table], dtype: type = np.float32) -> None:
        features, thresholds, lefts, rights, values = [], [], [], [], []
        roots, offset, depth = [], 0, 0
        for leaf, feature, threshold, left, right, value, tree_depth in tables:
            node = np.arange(len(leaf))
            features.append(np.where(leaf, 0, feature))
            thresholds.append(np.where(leaf, np.inf, threshold))
            lefts.append(np.where(leaf, node, left) + offset)
            rights.append(np.where(leaf, node, right) + offset)
            values.append(value)
            roots.append(offset)
            offset += len(leaf)
            depth = max(depth, tree_depth)
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds).astype(np.float64)
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.value = np.concatenate(values)  # nodes x classes (or x 1 for regression)
        self.roots = np.array(roots, dtype=np.intp)
        self.depth = depth
        self.dtype = dtype

    @classmethod
    def of(cls, trees: list[Any], columns: list[np.ndarray] | None = None) -> _Forest:
        """scikit-learn trees; columns[i]: the row's columns tree i was grown on (bagging over features)."""
        tables: list[Table] = []
        for i, tree in enumerate(trees):
            t = tree.tree_
            leaf = t.children_left == -1
            feature = np.where(leaf, 0, t.feature)
            if columns is not None:
                feature = np.asarray(columns[i])[feature]
            tables.append((leaf, feature, t.threshold, t.children_left, t.children_right, t.value[:, 0, :],
                           int(t.max_depth)))  # fmt: skip
        return cls(tables)

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Leaf node of every (tree, row): an array of trees x rows."""
        Xd: np.ndarray = np.asarray(X, dtype=self.dtype)
        n, width = Xd.shape
        flat = Xd.ravel()
        base = (np.arange(n, dtype=np.intp) * width).reshape(1, n)
        node = np.repeat(self.roots.reshape(-1, 1), n, axis=1)
        for _ in range(self.depth):
            go_left = flat[base + self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return node


def _forest_classifier(est: Any) -> Predictor | None:
    forest = _Forest.of(list(est.estimators_))
    # The forest averages each tree's class fractions; sum in tree order as
    # scikit-learn does (a reduction over axis 0 adds row after row).
    fractions = forest.value
    count = len(forest.roots)

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        proba = fractions[forest.leaves(X)].sum(axis=0)
        proba /= count
        return proba.argmax(axis=1), proba

    return predict


def _tree_classifier(est: Any) -> Predictor | None:
    forest = _Forest.of([est])
    fractions = forest.value

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        proba = fractions[forest.leaves(X)[0]]
        return proba.argmax(axis=1), proba

    return predict


def _forest_regressor(est: Any) -> Predictor | None:
    forest = _Forest.of(list(est.estimators_))
    values = forest.value[:, 0]
    count = len(forest.roots)

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        out = values[forest.leaves(X)].sum(axis=0)
        out /= count
        return out, None

    return predict


def _tree_regressor(est: Any) -> Predictor | None:
    forest = _Forest.of([est])
    values = forest.value[:, 0]

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None
        return values[forest.leaves(X)[0]].copy(), None

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


# Histogram gradient boosting ---------------------------------------------------


def _boosting_tables(est: Any) -> tuple[list[Table], int] | None:
    """Per class, a one-leaf tree holding the baseline, then the trees of every
    iteration: summed in this order they give scikit-learn's raw predictions."""
    if est._preprocessor is not None:
        return None  # categorical features: scikit-learn's bitsets decide
    k = int(est.n_trees_per_iteration_)
    baseline = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    tables: list[Table] = []
    one = np.ones(1, dtype=bool)
    for c in range(k):
        zero = np.zeros(1, dtype=np.intp)
        tables.append((one, zero, np.full(1, np.inf), zero, zero, baseline[c : c + 1].reshape(1, 1), 0))
    for iteration in est._predictors:
        if len(iteration) != k:
            return None
        for predictor in iteration:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                return None
            leaf = nodes["is_leaf"].astype(bool)
            tables.append((leaf, nodes["feature_idx"], nodes["num_threshold"], nodes["left"].astype(np.intp),
                           nodes["right"].astype(np.intp), nodes["value"].reshape(-1, 1).astype(np.float64),
                           int(nodes["depth"].max())))  # fmt: skip
    return tables, k


# Measured (benchmarks/predict_inprocess.py, 100 iterations x 3 classes): the walk costs about
# 150 µs + 53 µs a row, scikit-learn 1.7 ms + 25 µs a row; they cross near 55 rows.
_BOOSTING_MAX_ROWS = 32


def _boosting(est: Any) -> Predictor | None:
    try:
        built = _boosting_tables(est)
        link = est._loss.link.inverse
    except (AttributeError, KeyError, TypeError):
        return None  # another scikit-learn's private layout: let the estimator answer
    if built is None:
        return None
    tables, k = built
    forest = _Forest(tables, dtype=np.float64)  # these trees compare float64 values
    values = forest.value[:, 0]
    classifier = hasattr(est, "classes_")

    def predict(X: np.ndarray) -> Output | None:
        if len(X) > _BOOSTING_MAX_ROWS or not _finite(X):
            # A large batch: scikit-learn's compiled loop is faster than walking hundreds of trees
            # in numpy. Missing values take the side each split learned: the estimator's way.
            return None
        # (baseline + tree 1 + tree 2 ...) per class, in the order scikit-learn adds them.
        raw = values[forest.leaves(X)].reshape(-1, k, len(X)).sum(axis=0).T
        if not classifier:
            return np.asarray(link(raw.ravel()), dtype=np.float64), None
        if k == 1:
            indices = (raw.ravel() > 0).astype(np.int64)
            p = expit(raw.ravel())
            return indices, np.stack([1 - p, p], axis=1)
        indices = raw.argmax(axis=1)
        proba = raw - raw.max(axis=1, keepdims=True)
        np.exp(proba, out=proba)
        proba /= proba.sum(axis=1, keepdims=True)
        return indices, proba

    return predict


# Isolation forest -------------------------------------------------------------


def _isolation_forest(est: Any) -> Predictor | None:
    """(flags, anomaly scores): the scores are -score_samples, the flags predict's -1 (as 1)."""
    try:
        from sklearn.ensemble._iforest import _average_path_length

        # What scikit-learn adds per tree for a row that ends in each leaf, computed as it does per call.
        per_leaf = [np.asarray(d, dtype=np.float64) + np.asarray(a, dtype=np.float64) - 1.0
                    for d, a in zip(est._decision_path_lengths, est._average_path_length_per_tree)]  # fmt: skip
        denominator = len(est.estimators_) * _average_path_length([est._max_samples])[0]
        subsampled = est._max_features != est.n_features_in_
        offset = float(est.offset_)
    except (AttributeError, ImportError):
        return None  # another scikit-learn's private layout: let the estimator answer
    if denominator == 0:
        return None
    columns = [np.asarray(f, dtype=np.intp) for f in est.estimators_features_] if subsampled else None
    forest = _Forest.of(list(est.estimators_), columns)
    lengths = np.concatenate(per_leaf)  # indexed by the forest's flat node numbers

    def predict(X: np.ndarray) -> Output | None:
        if not _finite(X):
            return None  # scikit-learn sends missing values down its own way
        depths = lengths[forest.leaves(X)].sum(axis=0)  # tree after tree, as scikit-learn adds them
        scores = 2 ** (-(depths / denominator))
        return (-scores - offset < 0).astype(np.int64), scores

    return predict


_BUILDERS: dict[str, Callable[[Any], Predictor | None]] = {
    "LogisticRegression": _linear_classifier,
    "SGDClassifier": _linear_classifier,
    "LinearRegression": _linear_regressor,
    "Ridge": _linear_regressor,
    "SGDRegressor": _linear_regressor,
    "DecisionTreeClassifier": _tree_classifier,
    "DecisionTreeRegressor": _tree_regressor,
    "RandomForestClassifier": _forest_classifier,
    "RandomForestRegressor": _forest_regressor,
    "GaussianNB": _gaussian_nb,
    "KNeighborsClassifier": _knn,
    "KNeighborsRegressor": _knn,
    "IsolationForest": _isolation_forest,
    "HistGradientBoostingClassifier": _boosting,
    "HistGradientBoostingRegressor": _boosting,
}
