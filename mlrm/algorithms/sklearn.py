"""Adapters over scikit-learn estimators, one small class per short name.

The table below is the only place a scikit-learn class is named: config files
choose among these short names and never import a class by dotted path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlrm.algorithms import fitted_state
from mlrm.algorithms.base import Hyperparameter, Prediction, Progress, Task, no_progress
from mlrm.errors import StateError

if TYPE_CHECKING:
    from mlrm.algorithms.predictor import Predictor

# Versions saved before mlrm.algorithms.fitted_state (mlrm.algorithms.artifacts reads them).
LEGACY_ARTIFACT = "model.skops"

# Hyperparameters that mlrm sets itself, with the fix to tell the user.
_RESERVED = {
    "random_state": "mlrm sets it from training.seed; set `training.seed` instead",
    "verbose": "mlrm reports progress itself; remove it",
    "warm_start": "every training run starts afresh; remove it",
}


class SklearnAlgorithm:
    """Base for adapters over one scikit-learn estimator class."""

    name: ClassVar[str]
    task: ClassVar[Task]
    requires: ClassVar[str | None] = None
    module: ClassVar[str]
    class_name: ClassVar[str]
    # Our defaults where scikit-learn's are poor for small IoT data.
    overrides: ClassVar[dict[str, Any]] = {}
    # Hyperparameters mlrm sets itself: name -> the fix to tell the user.
    reserved: ClassVar[dict[str, str]] = _RESERVED

    def __init__(self, **params: Any) -> None:
        self.params = {**self.overrides, **params}
        self.estimator: Any = None
        self.n_classes: int | None = None
        # Predicts from the fitted arrays (mlrm.algorithms.compiled), or None: the estimator answers.
        self.fast: Predictor | None = None

    @classmethod
    def estimator_class(cls) -> type:
        return getattr(importlib.import_module(cls.module), cls.class_name)  # type: ignore[no-any-return]

    @classmethod
    def hyperparameters(cls) -> dict[str, Hyperparameter]:
        defaults = cls.estimator_class()().get_params(deep=False)
        return {
            key: Hyperparameter(key, cls.overrides.get(key, value))
            for key, value in sorted(defaults.items())
            if key not in _RESERVED
        }

    @classmethod
    def check(cls, params: dict[str, Any]) -> list[tuple[str, str]]:
        problems = [(key, f"'{key}' is not set here: {_RESERVED[key]}") for key in params if key in _RESERVED]
        if problems:
            return problems
        try:
            estimator = cls.estimator_class()(**{**cls.overrides, **params})
            estimator._validate_params()
        except (TypeError, ValueError) as exc:
            key = next((k for k in params if f"'{k}'" in str(exc)), "")
            problems.append((key, str(exc)))
        return problems

    def _build(self, seed: int) -> Any:
        klass = self.estimator_class()
        params = dict(self.params)
        if "random_state" in klass().get_params(deep=False):
            params["random_state"] = seed
        return klass(**params)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None,
        *,
        n_classes: int | None = None,
        progress: Progress = no_progress,
        seed: int = 0,
    ) -> SklearnAlgorithm:
        self.estimator = self._build(seed)
        self.n_classes = n_classes
        progress("fit", None, f"fitting {self.name} on {len(X)} rows")
        if self.task == "anomaly":
            self.estimator.fit(X)
        else:
            self.estimator.fit(X, y)
        progress("fit", 1.0, f"fitted {self.name}")
        self._compile()
        return self

    def _compile(self) -> None:
        # Here, not at the top: scipy is imported by whoever predicts, not by whoever checks a config set.
        from mlrm.algorithms.compiled import compile_predictor

        self.fast = compile_predictor(self.estimator)
        classes = getattr(self.estimator, "classes_", None)
        self._codes = None if classes is None else np.asarray(classes, dtype=np.int64)
        # Columns of the estimator's probabilities among all label codes, when they are not simply 0..k-1.
        self._scatter = self._codes is not None and not np.array_equal(self._codes, np.arange(self.n_classes or 0))

    def predict(self, X: np.ndarray) -> Prediction:
        if self.fast is not None:
            out = self.fast(X)
            if out is not None:
                return self._prediction(*out)
        return self.reference_predict(X)

    def _prediction(self, values: np.ndarray, proba: np.ndarray | None) -> Prediction:
        if self.task == "regression":
            return Prediction(values=np.asarray(values, dtype=np.float64))
        if self.task == "anomaly":
            return Prediction(values=values, scores=proba)  # flags, anomaly scores
        assert self._codes is not None
        codes = self._codes[values]
        if proba is None or not self.n_classes:
            return Prediction(values=codes)
        if self._scatter:
            full = np.zeros((len(proba), self.n_classes))
            full[:, self._codes] = proba
            proba = full
        return Prediction(values=codes, probabilities=proba)

    def reference_predict(self, X: np.ndarray) -> Prediction:
        """The estimator's own answers (what the compiled predictor must equal)."""
        est = self.estimator
        if self.task == "anomaly":
            # isolation_forest, the one anomaly entry: predict flags decision_function < 0, which is
            # score_samples - offset_ (its documented relation): one pass over the trees, not two.
            raw = est.score_samples(X)
            return Prediction(values=(raw - est.offset_ < 0).astype(np.int64), scores=-raw)
        if self.task == "regression":
            return Prediction(values=np.asarray(est.predict(X), dtype=np.float64))
        if not (hasattr(est, "predict_proba") and self.n_classes):
            return Prediction(values=np.asarray(est.predict(X), dtype=np.int64))
        proba = est.predict_proba(X)
        if type(est).__name__ in _ARGMAX_OF_PROBA:
            values = _labels_from(est, proba, X)
        else:
            values = est.predict(X)  # SVC's Platt-scaled probabilities need not agree with its predict
        probabilities = np.zeros((len(X), self.n_classes))
        probabilities[:, est.classes_.astype(np.int64)] = proba
        return Prediction(values=np.asarray(values, dtype=np.int64), probabilities=probabilities)

    def dump(self) -> dict[str, bytes]:
        return fitted_state.dumps(self.name, self.estimator, self.n_classes)

    def load(self, files: dict[str, bytes]) -> None:
        # Never a pickle: numbers and arrays set on this entry's own class (mlrm.algorithms.fitted_state).
        if fitted_state.STATE in files:
            self.adopt(*fitted_state.loads(self.name, self.estimator_class(), files))
        elif LEGACY_ARTIFACT in files:
            # An older version: skops rebuilds only the types this entry lists (mlrm.algorithms.artifacts).
            from mlrm.algorithms import artifacts

            self.adopt(*artifacts.loads(self.name, self.estimator_class(), files[LEGACY_ARTIFACT]))
        else:
            raise StateError(f"{self.name}: the learned state lacks {fitted_state.STATE}. Retrain it.")

    def adopt(self, estimator: Any, n_classes: int | None) -> None:
        """Take over a fitted estimator of this entry's class (a loaded one, or one `mlrm migrate` converts)."""
        if type(estimator) is not self.estimator_class():
            raise StateError(f"{self.name}: expected a fitted {self.class_name}, got a {type(estimator).__name__}")
        self.estimator, self.n_classes = estimator, n_classes
        self._compile()


# Classifiers whose predict is the argmax of the scores their predict_proba transforms monotonically:
# their labels come from the probabilities, one pass instead of two.
_ARGMAX_OF_PROBA = {"HistGradientBoostingClassifier"}


def _labels_from(est: Any, proba: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The estimator's predict, read off its probabilities; a near tie (where rounding in the
    transform could reorder the top two) is asked of the estimator itself."""
    indices = proba.argmax(axis=1)
    if proba.shape[1] > 1:
        top = np.partition(proba, -2, axis=1)
        unsure = top[:, -1] - top[:, -2] < 1e-9
        if unsure.any():
            labels = est.classes_[indices]
            labels[unsure] = est.predict(X[unsure])
            return labels
    return est.classes_[indices]


def adapter(
    name: str, module: str, class_name: str, task: Task, overrides: dict[str, Any] | None = None
) -> type[SklearnAlgorithm]:
    """Make the adapter class for one scikit-learn estimator."""
    attrs = {
        "name": name,
        "task": task,
        "module": module,
        "class_name": class_name,
        "overrides": overrides or {},
        "__doc__": f"`{name}`: scikit-learn's {class_name}.",
    }
    return type(class_name + "Adapter", (SklearnAlgorithm,), attrs)


SKLEARN_ALGORITHMS: list[type[SklearnAlgorithm]] = [
    adapter("logistic_regression", "sklearn.linear_model", "LogisticRegression", "classification", {"max_iter": 1000}),
    adapter("linear_regression", "sklearn.linear_model", "LinearRegression", "regression"),
    adapter("ridge", "sklearn.linear_model", "Ridge", "regression"),
    adapter("sgd_classifier", "sklearn.linear_model", "SGDClassifier", "classification", {"loss": "log_loss"}),
    adapter("sgd_regressor", "sklearn.linear_model", "SGDRegressor", "regression"),
    adapter("decision_tree_classifier", "sklearn.tree", "DecisionTreeClassifier", "classification"),
    adapter("decision_tree_regressor", "sklearn.tree", "DecisionTreeRegressor", "regression"),
    adapter("random_forest_classifier", "sklearn.ensemble", "RandomForestClassifier", "classification"),
    adapter("random_forest_regressor", "sklearn.ensemble", "RandomForestRegressor", "regression"),
    adapter(
        "hist_gradient_boosting_classifier", "sklearn.ensemble", "HistGradientBoostingClassifier", "classification"
    ),
    adapter("hist_gradient_boosting_regressor", "sklearn.ensemble", "HistGradientBoostingRegressor", "regression"),
    adapter("knn_classifier", "sklearn.neighbors", "KNeighborsClassifier", "classification"),
    adapter("knn_regressor", "sklearn.neighbors", "KNeighborsRegressor", "regression"),
    # No probability=True: deprecated in scikit-learn 1.9; SVC answers labels only.
    adapter("svc", "sklearn.svm", "SVC", "classification"),
    adapter("gaussian_nb", "sklearn.naive_bayes", "GaussianNB", "classification"),
    adapter("isolation_forest", "sklearn.ensemble", "IsolationForest", "anomaly"),
]
