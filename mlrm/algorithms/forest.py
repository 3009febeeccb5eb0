"""Trees, forests, isolation forests and gradient boosting as flat arrays.

Every tree of a fitted ensemble is laid out in a few numpy arrays (feature,
threshold, children, leaf values) and walked for all trees and rows at once;
the leaves' values are summed in tree order, as scikit-learn adds them, so the
answers equal the estimator's own (see mlrm.algorithms.compiled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from mlrm.algorithms.predictor import Output, Predictor, finite

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


def _mean_of_leaves(trees: list[Any], classifier: bool) -> Predictor:
    """The mean of the trees' leaf values (class fractions, or a value), summed in tree order as
    scikit-learn does (a reduction over axis 0 adds row after row); one tree is its own mean."""
    forest = _Forest.of(trees)
    values = forest.value if classifier else forest.value[:, 0]
    count = len(forest.roots)

    def predict(X: np.ndarray) -> Output | None:
        if not finite(X):
            return None
        mean = values[forest.leaves(X)].sum(axis=0)
        mean /= count
        return (mean.argmax(axis=1), mean) if classifier else (mean, None)

    return predict


def forest_classifier(est: Any) -> Predictor | None:
    return _mean_of_leaves(list(est.estimators_), classifier=True)


def tree_classifier(est: Any) -> Predictor | None:
    return _mean_of_leaves([est], classifier=True)


def forest_regressor(est: Any) -> Predictor | None:
    return _mean_of_leaves(list(est.estimators_), classifier=False)


def tree_regressor(est: Any) -> Predictor | None:
    return _mean_of_leaves([est], classifier=False)


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
BOOSTING_MAX_ROWS = 32


def boosting(est: Any) -> Predictor | None:
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
        if len(X) > BOOSTING_MAX_ROWS or not finite(X):
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


def isolation_forest(est: Any) -> Predictor | None:
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
        if not finite(X):
            return None  # scikit-learn sends missing values down its own way
        depths = lengths[forest.leaves(X)].sum(axis=0)  # tree after tree, as scikit-learn adds them
        scores = 2 ** (-(depths / denominator))
        return (-scores - offset < 0).astype(np.int64), scores

    return predict
