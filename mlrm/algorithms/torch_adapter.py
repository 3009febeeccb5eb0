"""The adapter base every torch network shares: fit, predict, dump and load
around a network a subclass builds from its hyperparameters.

Learned state is two files: `model.pt`, the state dict written by
torch.save and read back with weights_only=True (tensors only, never code),
and `network.yaml`, the few numbers needed to rebuild the same architecture
(input width, window length, outputs, target scaling, anomaly threshold).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn import functional as F

from mlrm.algorithms import torch_params
from mlrm.algorithms.base import Hyperparameter, Prediction, Progress, Task, no_progress
from mlrm.algorithms.torch_training import (
    Loss,
    Settings,
    forward,
    load_state,
    reproducible,
    resolve_device,
    state_bytes,
    train,
)
from mlrm.errors import StateError

WEIGHTS, NETWORK = "model.pt", "network.yaml"
FORMAT = 1


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=1)


class TorchAlgorithm:
    """Base of the torch adapters. Subclasses set name, task and build(); their hyperparameters
    are the table torch_params.SPECS holds under their name."""

    name: ClassVar[str]
    task: ClassVar[Task]
    requires: ClassVar[str | None] = "torch"
    # True: X is windows, shape (n, window, features); False: rows (n, features).
    sequence: ClassVar[bool] = False
    # Hyperparameters mlrm sets itself: name -> the fix to tell the user.
    reserved: ClassVar[dict[str, str]] = torch_params.RESERVED

    def __init__(self, **params: Any) -> None:
        self.params = {**{k: s.default for k, s in torch_params.SPECS[self.name].items()}, **params}
        self.module: nn.Module | None = None
        self.network: dict[str, Any] = {}

    @classmethod
    def hyperparameters(cls) -> dict[str, Hyperparameter]:
        return dict(torch_params.SPECS[cls.name])

    @classmethod
    def check(cls, params: dict[str, Any]) -> list[tuple[str, str]]:
        return torch_params.check_params(cls.name, params)

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        """The untrained network for this shape (subclasses)."""
        raise NotImplementedError

    def pretrain(self, module: nn.Module, X: torch.Tensor, progress: Progress) -> None:
        """Hook before supervised training (the deep belief network uses it)."""

    def _shape(self, X: np.ndarray) -> tuple[int, int | None]:
        rank = 3 if self.sequence else 2
        if X.ndim != rank:
            what = "windows (n, window, features)" if self.sequence else "rows (n, features)"
            raise ValueError(f"{self.name} takes {what}, got an array of shape {X.shape}")
        return int(X.shape[-1]), (int(X.shape[1]) if self.sequence else None)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None,
        *,
        n_classes: int | None = None,
        progress: Progress = no_progress,
        seed: int = 0,
    ) -> TorchAlgorithm:
        s = Settings.from_params(self.params)
        device = resolve_device(s.device)
        inputs, window = self._shape(X)
        network: dict[str, Any] = {"format": FORMAT, "torch": torch.__version__.split("+")[0],
                                   "inputs": inputs, "window": window}  # fmt: skip
        if self.task == "classification":
            assert y is not None
            outputs = int(n_classes or int(np.max(y)) + 1)
            target = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
            loss: Loss = F.cross_entropy
        elif self.task == "regression":
            assert y is not None
            y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            # Train on a standardised target: the same learning rate then suits watts and millimetres.
            mean, std = y2.mean(axis=0), y2.std(axis=0)
            std[std == 0] = 1.0
            network.update(target_mean=mean.tolist(), target_std=std.tolist(), target_flat=np.ndim(y) == 1)
            outputs = y2.shape[1]
            target = torch.as_tensor((y2 - mean) / std, dtype=torch.float32, device=device)
            loss = F.mse_loss
        else:
            outputs = inputs
            target = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
            loss = F.mse_loss
        network["outputs"] = outputs
        data = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
        with reproducible(seed, device, s.threads):
            module = self.build(inputs, outputs, window).to(device)
            size = sum(p.numel() for p in module.parameters())
            progress("fit", None, f"training {self.name} ({size} parameters) on {len(X)} "
                                  f"{'windows' if self.sequence else 'rows'} on {device.type}")  # fmt: skip
            self.pretrain(module, data, progress)
            history = train(module, loss, data, target, s, seed=seed, ordered=self.sequence, progress=progress)
        self.module = module.cpu().eval()
        network["history"] = history.as_dict()
        self.network = network
        if self.task == "anomaly":
            scores = self._reconstruction_error(np.asarray(X, dtype=np.float64))
            network["threshold"] = float(np.quantile(scores, float(self.params["threshold_quantile"])))
        progress("fit", 1.0, f"trained {self.name}: {history.epochs} epochs, best epoch {history.best_epoch}")
        return self

    def _require(self, X: np.ndarray) -> nn.Module:
        if self.module is None:
            raise StateError(f"{self.name} has not been fitted or loaded")
        inputs, window = self._shape(X)
        if inputs != self.network["inputs"] or window != self.network["window"]:
            raise ValueError(
                f"{self.name} was trained on {self.network['window'] or ''} x {self.network['inputs']} inputs, "
                f"got shape {X.shape}"
            )
        return self.module

    def _reconstruction_error(self, X: np.ndarray) -> np.ndarray:
        assert self.module is not None
        flat = X.reshape(len(X), -1)
        return np.mean((forward(self.module, X).reshape(len(X), -1) - flat) ** 2, axis=1)  # type: ignore[no-any-return]

    def predict(self, X: np.ndarray) -> Prediction:
        module = self._require(X)
        if self.task == "anomaly":
            scores = self._reconstruction_error(X)
            return Prediction(values=(scores > self.network["threshold"]).astype(np.int64), scores=scores)
        if self.task == "classification":
            probabilities = forward(module, X, _softmax)
            return Prediction(values=np.argmax(probabilities, axis=1), probabilities=probabilities)
        out = forward(module, X)
        values = out * np.asarray(self.network["target_std"]) + np.asarray(self.network["target_mean"])
        return Prediction(values=values[:, 0] if self.network["target_flat"] else values)

    def dump(self) -> dict[str, bytes]:
        if self.module is None:
            raise StateError(f"{self.name} has not been fitted")
        network = yaml.safe_dump(self.network, sort_keys=False).encode("utf-8")
        return {WEIGHTS: state_bytes(self.module), NETWORK: network}

    def load(self, files: dict[str, bytes]) -> None:
        missing = [f for f in (WEIGHTS, NETWORK) if f not in files]
        if missing:
            raise StateError(f"{self.name}: the learned state lacks {', '.join(missing)}. Retrain it.")
        try:
            network = yaml.safe_load(files[NETWORK].decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            network = None
        ints = ("inputs", "outputs")
        if (
            not isinstance(network, dict)
            or network.get("format") != FORMAT
            or not all(isinstance(network.get(k), int) and network[k] > 0 for k in ints)
        ):
            raise StateError(f"{self.name}: {NETWORK} is not a network description this mlrm can read. Retrain it.")
        with torch.random.fork_rng(devices=[]):  # initial weights are overwritten: leave the caller's RNG alone
            module = self.build(network["inputs"], network["outputs"], network.get("window"))
        load_state(module, files[WEIGHTS], self.name)
        self.module, self.network = module, network
