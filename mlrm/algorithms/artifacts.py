"""Versions saved as a skops file (before mlrm.algorithms.fitted_state): loading it never runs code from it.

New versions are saved in mlrm's own format (mlrm.algorithms.fitted_state); this
module reads the `model.skops` of older ones, so they still serve and can be rolled
back to, and imports skops only when it does (about 16 MB a process).

A pickle (joblib) names any callable and runs it on load, so a planted
`__reduce__` runs in every worker that loads the version. skops stores the
same objects as a JSON schema plus numpy arrays (saved without pickle) and
rebuilds only types it is told to trust: its defaults (numpy, scipy and
scikit-learn's estimator classes) plus, per registry entry, the few internal
types that entry needs (`Tree` for the trees, `KDTree` for the neighbours).
Any other type in a file is refused before anything is built.

A trusted type can still carry bad numbers: scikit-learn walks the node
arrays of a tree without bounds checks, so a crafted node table could read
outside its arrays (skops leaves `TreePredictor` untrusted for that reason).
Loading therefore checks every tree's table before it serves: children
inside the table and after their parent (so every walk ends at a leaf),
features inside the input width. Signed versions (mlrm.storage.signatures)
keep crafted files out altogether.
"""

from __future__ import annotations

import sys
import zipfile
from types import ModuleType
from typing import Any

import numpy as np

from mlrm.errors import StateError


def _import_skops() -> ModuleType:
    """skops.io, without torch.

    Importing skops.io lists every scikit-learn estimator (sklearn.utils.all_estimators), which walks
    every package of scikit-learn and so imports sklearn.externals.array_api_compat.torch, and with it
    torch when torch is installed: +1.2 s and +180 MB in every scikit-learn service (measured). That
    one package is blocked while skops loads (walk_packages skips a package that fails to import);
    scikit-learn's array API support for torch tensors, the only user of it, is never used here.
    """
    blocked = "sklearn.externals.array_api_compat.torch"
    if blocked in sys.modules:
        import skops.io

        return skops.io
    sys.modules[blocked] = None  # type: ignore[assignment]  # None in sys.modules: ImportError on import
    try:
        import skops.io

        return skops.io
    finally:
        del sys.modules[blocked]


ARTIFACT = "model.skops"

_TREE = ("sklearn.tree._tree.Tree",)
_BOOSTING = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
# Every distance a KNeighbors* can fit with by name (not PyFuncDistance64: it holds a Python function).
_NEIGHBOURS = (
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    *(f"sklearn.metrics._dist_metrics.{name}Distance64" for name in (
        "BrayCurtis", "Canberra", "Chebyshev", "Dice", "Euclidean", "Hamming", "Haversine", "Jaccard",
        "Mahalanobis", "Manhattan", "Matching", "Minkowski", "RogersTanimoto", "RussellRao", "SEuclidean",
        "SokalMichener", "SokalSneath",
    )),
)  # fmt: skip

# Estimator class -> the types beyond skops' defaults that its learned state may hold.
TRUSTED: dict[str, tuple[str, ...]] = {
    "DecisionTreeClassifier": _TREE,
    "DecisionTreeRegressor": _TREE,
    "RandomForestClassifier": _TREE,
    "RandomForestRegressor": _TREE,
    "IsolationForest": _TREE,
    "HistGradientBoostingClassifier": _BOOSTING,
    "HistGradientBoostingRegressor": _BOOSTING,
    "KNeighborsClassifier": _NEIGHBOURS,
    "KNeighborsRegressor": _NEIGHBOURS,
}


def dumps(name: str, estimator: Any, n_classes: int | None) -> bytes:
    """The skops file of an entry's fitted estimator; StateError if it holds a type loading would refuse."""
    data = _import_skops().dumps({"estimator": estimator, "n_classes": n_classes}, compression=zipfile.ZIP_DEFLATED)
    foreign = _untrusted(data, type(estimator).__name__)
    if foreign:
        # Refused now rather than written and refused by every service that loads it.
        raise StateError(f"{name}: the fitted model holds {', '.join(foreign)}, which mlrm does not load from a "
                         f"file (only the types it lists for {name}). Fix: choose another setting (a named metric "
                         f"instead of a Python function, say)")  # fmt: skip
    return data


def loads(name: str, estimator_class: type, data: bytes) -> tuple[Any, int | None]:
    """(estimator, n_classes) from dumps()'s output; StateError for anything else, before any object is built."""
    where = f"{name}: {ARTIFACT}"
    try:
        foreign = _untrusted(data, estimator_class.__name__)
    except Exception as exc:  # skops reads zip, JSON and numpy: any of them may fail on a bad file
        raise StateError(f"{where} is not a skops file mlrm can read ({type(exc).__name__}). Retrain it.") from None
    if foreign:
        raise StateError(f"{where} holds types mlrm does not load for {name}: {', '.join(foreign)}. The file was "
                         f"not written by mlrm, so it is not loaded. Fix: retrain, or roll back to a good version")  # fmt: skip
    try:
        state = _import_skops().loads(data, trusted=list(TRUSTED.get(estimator_class.__name__, ())))
    except Exception as exc:
        raise StateError(
            f"{where} is not a skops file mlrm can read ({type(exc).__name__}: {exc}). Retrain it."
        ) from None
    estimator = state.get("estimator") if isinstance(state, dict) else None
    n_classes = state.get("n_classes") if isinstance(state, dict) else None
    if type(estimator) is not estimator_class or not (n_classes is None or type(n_classes) is int):
        raise StateError(f"{where} does not hold a fitted {estimator_class.__name__}. Retrain it.")
    problem = bad_trees(estimator)
    if problem:
        raise StateError(f"{where}: {problem}; the file was not written by mlrm, so it is not loaded. Retrain it.")
    return estimator, n_classes


def _untrusted(data: bytes, kind: str) -> list[str]:
    allowed = set(TRUSTED.get(kind, ()))
    return sorted(t for t in _import_skops().get_untrusted_types(data=data) if t not in allowed)


def bad_trees(est: Any) -> str | None:
    """What is wrong with the node tables of a fitted tree ensemble, or None."""
    found = getattr(est, "n_features_in_", None)
    if not isinstance(found, int | np.integer):
        return "no input width (n_features_in_)"
    width = int(found)
    trees = [e.tree_ for e in getattr(est, "estimators_", [est]) if hasattr(e, "tree_")]
    for i, tree in enumerate(trees):
        nodes = tree.__getstate__()["nodes"]
        if _bad_table(nodes["left_child"], nodes["right_child"], nodes["left_child"] == -1, nodes["feature"], width):
            return f"tree {i} has children or features outside its node table"
    for i, predictor in enumerate(p for stage in getattr(est, "_predictors", []) for p in stage):
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        bitsets = nodes["bitset_idx"][nodes["is_categorical"].astype(bool) & ~leaf]
        if _bad_table(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), leaf,
                      nodes["feature_idx"], width) or (bitsets >= len(predictor.raw_left_cat_bitsets)).any():  # fmt: skip
            return f"boosting tree {i} has children or features outside its node table"
    return None


def _bad_table(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, feature: np.ndarray, width: int) -> bool:
    index = np.arange(len(left))
    inner = ~leaf
    children_after = (left[inner] > index[inner]) & (right[inner] > index[inner])
    inside = (left[inner] < len(left)) & (right[inner] < len(left))
    features = (feature[inner] >= 0) & (feature[inner] < width)
    return len(left) == 0 or not bool((children_after & inside & features).all())
