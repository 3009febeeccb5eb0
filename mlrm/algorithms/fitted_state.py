"""scikit-learn learned state in a format of mlrm's own: numbers and arrays, nothing that names code.

A fitted estimator is saved as two files: `model.npz`, its arrays (numpy's
zip of .npy files, read with allow_pickle=False, so an object array is refused
by numpy itself), and `model.json`, the rest: the registry name, the
estimator's attributes as JSON numbers, strings, lists and references into
the arrays. Loading rebuilds the estimator from the class the registry entry
names (never from a name in the file): an empty instance whose attributes are
set one by one, each name checked (an identifier, not a dunder, not one of the
class's own methods or properties). The few objects inside an estimator that
are not plain data are rebuilt by code here, for the entries that hold them:
a tree's node table (`Tree`, from its arrays), a boosting tree
(`TreePredictor`), the parts a forest or gradient boosting is made of (by a
class table per entry), and values scikit-learn derives from the others (the
loss of gradient boosting and SGD, the search tree of the neighbours), which
are computed again rather than read. Every tree's table is checked before it
serves (mlrm.algorithms.artifacts.bad_trees).

Why not skops: loading skops imports it, and importing skops lists every
scikit-learn estimator, which imports most of scikit-learn: about 16 MB in
every process that loads a model. Versions saved as `model.skops` still load
(mlrm.algorithms.artifacts, skops imported only then).
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from mlrm.errors import StateError

STATE = "model.json"
ARRAYS = "model.npz"
FORMAT = "mlrm-sklearn/1"

_TREES = "sklearn.tree"
_BOOSTING = {
    "_BinMapper": ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
    "LabelEncoder": ("sklearn.preprocessing", "LabelEncoder"),
}
# Estimator class -> the classes of the estimators its state may hold (a forest's trees, say), by name.
PARTS: dict[str, dict[str, tuple[str, str]]] = {
    "RandomForestClassifier": {"DecisionTreeClassifier": (_TREES, "DecisionTreeClassifier")},
    "RandomForestRegressor": {"DecisionTreeRegressor": (_TREES, "DecisionTreeRegressor")},
    "IsolationForest": {"ExtraTreeRegressor": (_TREES, "ExtraTreeRegressor")},
    "HistGradientBoostingClassifier": _BOOSTING,
    "HistGradientBoostingRegressor": _BOOSTING,
}
# Estimator classes whose state holds scikit-learn's Tree node tables / gradient boosting's TreePredictors.
HOLD_TREES = {"DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier", "RandomForestRegressor",
              "IsolationForest"}  # fmt: skip
HOLD_PREDICTORS = {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"}


def _neighbours_tree(est: Any) -> Any:
    """The search tree of a fitted KNeighbors*, built again from its training rows as its fit builds it."""
    from sklearn.neighbors import BallTree, KDTree

    klass = {"kd_tree": KDTree, "ball_tree": BallTree}[est._fit_method]
    return klass(est._fit_X, est.leaf_size, metric=est.effective_metric_, **est.effective_metric_params_)


# Attributes computed again from the others on load, never read from the file (they hold compiled objects).
REBUILT: dict[str, Callable[[Any], Any]] = {
    "_loss": lambda est: est._get_loss(sample_weight=None),  # gradient boosting: predict uses its link only
    "_loss_function_": lambda est: est._get_loss_function(est.loss),  # SGD: used by fit only
    "_feature_subsample_rng": lambda est: np.random.default_rng(est._random_seed),  # gradient boosting: fit only
    "_tree": _neighbours_tree,
}
_PLAIN_KINDS = "biuf"


def _plain(dtype: np.dtype[Any]) -> bool:
    """Numbers, or a record of numbers (a tree's node table): never objects, strings or times."""
    if dtype.names is not None:
        return all(_plain(dtype.fields[name][0]) for name in dtype.names)  # type: ignore[index]
    return dtype.kind in _PLAIN_KINDS and dtype.subdtype is None


def _check_name(klass: type, key: object, where: str) -> str:
    if not isinstance(key, str) or not key.isidentifier() or key.startswith("__") or hasattr(klass, key):
        raise StateError(f"{where}: {key!r} is not an attribute mlrm sets on a {klass.__name__}")
    return key


def _is(value: Any, module: str, name: str) -> bool:
    return type(value).__module__ == module and type(value).__name__ == name


class _Writer:
    def __init__(self, top: str) -> None:
        self.top = top
        self.parts = PARTS.get(top, {})
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value: np.ndarray, where: str) -> str:
        if not _plain(value.dtype):
            raise StateError(f"{where}: an array of {value.dtype}, which mlrm does not save")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return key

    def value(self, v: Any, where: str) -> Any:
        if v is None or type(v) in (bool, int, float, str):
            return v
        if isinstance(v, np.ndarray):
            return {"@": "array", "key": self.array(v, where)}
        if isinstance(v, np.generic):
            return {"@": "number", "key": self.array(np.asarray(v), where)}
        if type(v) is list:
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if type(v) is tuple:
            return {"@": "tuple", "items": [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if type(v) is dict:
            return {
                "@": "dict",
                "items": [[self.value(k, where), self.value(x, f"{where}[{k!r}]")] for k, x in v.items()],
            }
        if _is(v, "sklearn.tree._tree", "Tree") and self.top in HOLD_TREES:
            n_classes = np.asarray(v.n_classes, dtype=np.intp)
            return {"@": "tree", "n_features": int(v.n_features), "n_outputs": int(v.n_outputs),
                    "n_classes": self.value(n_classes, where), "state": self.value(v.__getstate__(), where)}  # fmt: skip
        predictor = "sklearn.ensemble._hist_gradient_boosting.predictor"
        if _is(v, predictor, "TreePredictor") and self.top in HOLD_PREDICTORS:
            return {"@": "tree_predictor", "nodes": self.value(v.nodes, where),
                    "binned_left_cat_bitsets": self.value(v.binned_left_cat_bitsets, where),
                    "raw_left_cat_bitsets": self.value(v.raw_left_cat_bitsets, where)}  # fmt: skip
        name = type(v).__name__
        if (type(v).__module__.split(".")[0], name) == ("sklearn", self.parts.get(name, ("", ""))[1]):
            return {"@": "estimator", "class": name, "state": self.attributes(v, where)}
        raise StateError(f"{where}: a {type(v).__module__}.{name}, which mlrm does not save")

    def attributes(self, obj: Any, where: str) -> dict[str, Any]:
        out = {}
        for key, v in vars(obj).items():
            _check_name(type(obj), key, where)
            out[key] = {"@": "rebuilt"} if key in REBUILT and v is not None else self.value(v, f"{where}.{key}")
        return out


def dumps(name: str, estimator: Any, n_classes: int | None) -> dict[str, bytes]:
    """{model.json, model.npz} of an entry's fitted estimator; StateError for a part mlrm could not load again."""
    import sklearn

    kind = type(estimator).__name__
    writer = _Writer(kind)
    try:
        state = writer.attributes(estimator, kind)
    except StateError as exc:
        # Refused now rather than written and refused by every service that loads it.
        raise StateError(f"{name}: the fitted model holds what mlrm does not save ({exc}). Fix: choose another "
                         f"setting (a named metric instead of a Python function, say)") from None  # fmt: skip
    doc = {"format": FORMAT, "algorithm": name, "class": kind, "scikit-learn": sklearn.__version__,
           "n_classes": n_classes, "estimator": state}  # fmt: skip
    arrays = io.BytesIO()
    np.savez_compressed(arrays, **writer.arrays)  # type: ignore[arg-type]
    text = json.dumps(doc, separators=(",", ":"), allow_nan=True)
    return {STATE: text.encode("utf-8"), ARRAYS: arrays.getvalue()}


class _Reader:
    def __init__(self, top: type, arrays: Any, where: str) -> None:
        self.top = top.__name__
        self.parts = PARTS.get(self.top, {})
        self.arrays = arrays
        self.where = where

    def fail(self, what: str) -> StateError:
        return StateError(f"{self.where}: {what}; the file was not written by mlrm, so it is not loaded. Retrain it.")

    def array(self, node: dict[str, Any]) -> np.ndarray:
        key = node.get("key")
        if not isinstance(key, str) or key not in self.arrays.files:
            raise self.fail(f"no array {key!r} in {ARRAYS}")
        try:
            value = self.arrays[key]  # allow_pickle=False: numpy refuses an object array
        except (ValueError, OSError, EOFError) as exc:
            raise self.fail(f"array {key} does not load ({exc})") from None
        if not _plain(value.dtype):
            raise self.fail(f"array {key} is of {value.dtype}")
        return value  # type: ignore[no-any-return]

    def value(self, node: Any) -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.value(x) for x in node]
        if type(node) is not dict:
            raise self.fail(f"unexpected {type(node).__name__}")
        tag = node.get("@")
        if tag == "array":
            return self.array(node)
        if tag == "number":
            number = self.array(node)
            if number.ndim != 0:
                raise self.fail("a number stored as an array")
            return number[()]
        if tag == "tuple":
            return tuple(self.value(x) for x in self.items(node))
        if tag == "dict":
            pairs = [(self.value(k), self.value(v)) for k, v in (self.pair(p) for p in self.items(node))]
            if not all(type(k) in (str, int, float, bool) or k is None for k, _ in pairs):
                raise self.fail("a mapping with keys that are not plain values")
            return dict(pairs)
        if tag == "estimator" and node.get("class") in self.parts:
            module, class_name = self.parts[node["class"]]
            return self.estimator(getattr(importlib.import_module(module), class_name), node.get("state"))
        if tag == "tree" and self.top in HOLD_TREES:
            return self.tree(node)
        if tag == "tree_predictor" and self.top in HOLD_PREDICTORS:
            return self.tree_predictor(node)
        raise self.fail(f"{str(tag)[:40]!r} where a {self.top} holds none")

    def items(self, node: dict[str, Any]) -> list[Any]:
        items = node.get("items")
        if type(items) is not list:
            raise self.fail("a list without items")
        return items

    def pair(self, item: Any) -> tuple[Any, Any]:
        if type(item) is not list or len(item) != 2:
            raise self.fail("a mapping entry that is not a pair")
        return item[0], item[1]

    def estimator(self, klass: type[Any], state: Any) -> Any:
        if type(state) is not dict:
            raise self.fail(f"no attributes for a {klass.__name__}")
        obj = object.__new__(klass)  # an empty instance: no __init__, no code of the file's choosing
        later = []
        for key, node in state.items():
            _check_name(klass, key, self.where)
            if node == {"@": "rebuilt"}:
                if key not in REBUILT:
                    raise self.fail(f"{key} marked to be rebuilt")
                later.append(key)
            else:
                obj.__dict__[key] = self.value(node)
        for key in later:
            try:
                obj.__dict__[key] = REBUILT[key](obj)
            except Exception as exc:  # the other attributes did not describe what this one is built from
                raise self.fail(f"{key} cannot be rebuilt ({type(exc).__name__}: {exc})") from None
        return obj

    def tree(self, node: dict[str, Any]) -> Any:
        from sklearn.tree._tree import Tree

        n_features, n_outputs = node.get("n_features"), node.get("n_outputs")
        n_classes = self.value(node.get("n_classes"))
        state = self.value(node.get("state"))
        if type(n_features) is not int or type(n_outputs) is not int or not isinstance(n_classes, np.ndarray):
            raise self.fail("a tree without its sizes")
        if type(state) is not dict or set(state) != {"max_depth", "node_count", "nodes", "values"}:
            raise self.fail("a tree without its node table")
        try:
            tree = Tree(n_features, np.asarray(n_classes, dtype=np.intp), n_outputs)
            tree.__setstate__(state)  # checks the table's record layout and sizes
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"a tree that does not fit together ({exc})") from None
        return tree

    def tree_predictor(self, node: dict[str, Any]) -> Any:
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        nodes = self.value(node.get("nodes"))
        binned, raw = self.value(node.get("binned_left_cat_bitsets")), self.value(node.get("raw_left_cat_bitsets"))
        if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1:
            raise self.fail("a boosting tree whose nodes are not scikit-learn's records")
        for bitsets in (binned, raw):
            if not isinstance(bitsets, np.ndarray) or bitsets.dtype != np.uint32 or bitsets.ndim != 2:
                raise self.fail("a boosting tree without its bitsets")
        return TreePredictor(nodes, binned, raw)


def loads(name: str, estimator_class: type, files: dict[str, bytes]) -> tuple[Any, int | None]:
    """(estimator, n_classes) from dumps()'s files; StateError for anything else."""
    from mlrm.algorithms.artifacts import bad_trees

    where = f"{name}: {STATE}"
    try:
        doc = json.loads(files[STATE].decode("utf-8"))
        arrays = np.load(io.BytesIO(files[ARRAYS]), allow_pickle=False)
    except KeyError:
        raise StateError(f"{name}: the learned state lacks {ARRAYS}. Retrain it.") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise StateError(
            f"{where} or {ARRAYS} is not a file mlrm can read ({type(exc).__name__}). Retrain it."
        ) from None
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise StateError(f"{where} is not an mlrm state file ({FORMAT}). Retrain it.")
    if doc.get("algorithm") != name or doc.get("class") != estimator_class.__name__:
        raise StateError(f"{where} holds a {str(doc.get('algorithm'))[:60]!r}, not {name}. Retrain it.")
    n_classes = doc.get("n_classes")
    if not (n_classes is None or type(n_classes) is int):
        raise StateError(f"{where}: n_classes is not a number. Retrain it.")
    with arrays:
        reader = _Reader(estimator_class, arrays, where)
        try:
            estimator = reader.estimator(estimator_class, doc.get("estimator"))
        except RecursionError:
            raise reader.fail("nested too deep") from None
    problem = bad_trees(estimator)
    if problem:
        raise StateError(f"{where}: {problem}; the file was not written by mlrm, so it is not loaded. Retrain it.")
    return estimator, n_classes
