"""A trained model: encoder, learned preprocessing and adapter, ready to predict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlrm import algorithms
from mlrm.algorithms import Algorithm, Prediction
from mlrm.config.service_config import ServiceConfig
from mlrm.core import profile as profiles
from mlrm.core.answer import Outputs
from mlrm.core.encoding import Preprocessor, RowEncoder, TargetEncoder
from mlrm.core.sequence import WindowEncoder
from mlrm.errors import StateError
from mlrm.storage.versions import VersionRecord


def make_algorithm(config: ServiceConfig) -> Algorithm:
    """A fresh, unfitted adapter for the config set's algorithm."""
    return algorithms.get(config.algorithm)(**config.hyperparameters)


class Model:
    """Everything needed to answer predict for one version of one config set."""

    def __init__(
        self,
        config: ServiceConfig,
        preprocessor: Preprocessor,
        algorithm: Algorithm,
        version: int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.encoder = RowEncoder(config)
        self.targets = TargetEncoder(config)
        self.preprocessor = preprocessor
        self.algorithm = algorithm
        self.version = version
        self.parameters = parameters or {}
        self.labels = list(config.labels)
        # Windows of records for a config set with a sequence section, else None.
        self.windows = WindowEncoder.of(config, self.encoder)
        self.shape: tuple[int, ...] = self.windows.shape if self.windows else (self.encoder.width,)
        # What the model saw when trained (mlrm.core.profile), or None for a version made before profiles.
        self.profile: dict[str, Any] | None = None
        # Called with every batch predicted while serving (the drift monitor); None: nobody watches.
        self.observer: Callable[[np.ndarray, Prediction], None] | None = None

    @classmethod
    def from_record(cls, config: ServiceConfig, record: VersionRecord) -> Model:
        """Rebuild a stored version; StateError if it no longer fits service.yaml."""
        trained = record.parameters.get("signature")
        if trained is not None and trained != config.signature():
            changed = [k for k in config.signature() if trained.get(k) != config.signature()[k]]
            raise StateError(
                f"version {record.version} was trained with different {', '.join(changed)} than service.yaml "
                f"now declares. Retrain it: mlrm train {config.path} --data FILE.csv"
            )
        legacy = sorted(name for name in record.files if name.endswith(".joblib"))
        if legacy:
            # A pickle runs whatever code it names when loaded: it is refused, never opened.
            raise StateError(
                f"version {record.version} of {config.path} holds {legacy[0]}, a pickle, which can run code when "
                f"loaded; mlrm loads only files that cannot. If you trust this folder, convert it once: "
                f"mlrm migrate {config.path} (it checks the digests and re-saves every version under its number)"
            )
        algorithm = make_algorithm(config)
        algorithm.load(record.files)
        preprocessor = Preprocessor.from_dict(record.parameters["preprocessing"])
        model = cls(config, preprocessor, algorithm, record.version, record.parameters)
        stored = record.files.get(profiles.PROFILE)
        if stored is not None:
            model.profile = profiles.loads(
                config, stored, str(config.learned_dir / "versions" / f"{record.version:04d}")
            )
        return model

    def features(self, raw: np.ndarray) -> np.ndarray:
        """Encoded rows (or windows) -> what the algorithm reads. Windows are
        flattened for algorithms that read rows (a random forest over windows)."""
        X = self.preprocessor.transform(raw)
        if X.ndim == 3 and not algorithms.takes_windows(self.config.algorithm):
            X = X.reshape(len(X), -1)
        return X

    def predict_matrix(self, raw: np.ndarray) -> Prediction:
        """Predict from encoded (not yet preprocessed) rows or windows."""
        prediction = self.algorithm.predict(self.features(raw))
        if self.observer is not None:
            self.observer(raw, prediction)
        return prediction

    def outputs(self, prediction: Prediction) -> Outputs:
        """The JSON-ready body parts for a prediction (no model info)."""
        task = self.config.task
        if task == "classification":
            labels = self.labels
            body: Outputs = {"predictions": [labels[int(c)] for c in prediction.values]}
            if prediction.probabilities is not None:
                keys = [str(label) for label in labels]
                body["probabilities"] = [dict(zip(keys, row)) for row in prediction.probabilities.tolist()]
            return body
        if task == "anomaly":
            return {
                "predictions": [bool(v) for v in prediction.values],
                "scores": prediction.scores.tolist() if prediction.scores is not None else None,
            }
        return {"predictions": prediction.values.tolist()}

    def predict(self, instances: Any) -> Outputs:
        """Validate instances and predict: the body of a /v1/predict answer."""
        return self.outputs(self.predict_matrix(self.encoder.encode(instances)))
