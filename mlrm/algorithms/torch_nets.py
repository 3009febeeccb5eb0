"""Feed-forward, recurrent, convolutional and autoencoder networks, each
built from YAML hyperparameters, and their registry entries."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from mlrm.algorithms.torch_adapter import TorchAlgorithm

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
}  # fmt: skip


def dense_stack(inputs: int, layers: list[int], p: dict[str, Any]) -> tuple[list[nn.Module], int]:
    """Linear [-> BatchNorm] -> activation [-> Dropout] per hidden layer."""
    modules: list[nn.Module] = []
    width = inputs
    for units in layers:
        modules.append(nn.Linear(width, units))
        if p.get("batch_norm"):
            modules.append(nn.BatchNorm1d(units))
        modules.append(ACTIVATIONS[p.get("activation", "relu")]())
        if p.get("dropout"):
            modules.append(nn.Dropout(p["dropout"]))
        width = units
    return modules, width


def mlp(inputs: int, outputs: int, p: dict[str, Any]) -> nn.Sequential:
    """A feed-forward network: hidden layers from p['layers'], then a linear head."""
    modules, width = dense_stack(inputs, list(p["layers"]), p)
    return nn.Sequential(*modules, nn.Linear(width, outputs))


class RecurrentNet(nn.Module):
    """Stacked LSTM or GRU layers (each its own size); the last step's output feeds a linear head."""

    def __init__(self, cell: str, inputs: int, outputs: int, layers: list[int], dropout: float) -> None:
        super().__init__()
        kind = nn.LSTM if cell == "lstm" else nn.GRU
        self.layers = nn.ModuleList()
        width = inputs
        for units in layers:
            self.layers.append(kind(width, units, batch_first=True))
            width = units
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.head = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)[0]
            if self.dropout is not None:
                x = self.dropout(x)
        return self.head(x[:, -1])  # type: ignore[no-any-return]


class ConvNet(nn.Module):
    """1-D convolutions over time, channels = features; global average pooling, linear head."""

    def __init__(self, inputs: int, outputs: int, window: int, p: dict[str, Any]) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        width, length, pool = inputs, window, int(p["pool"])
        for filters in p["layers"]:
            modules.append(nn.Conv1d(width, filters, int(p["kernel_size"]), padding="same"))
            if p["batch_norm"]:
                modules.append(nn.BatchNorm1d(filters))
            modules.append(ACTIVATIONS[p["activation"]]())
            if pool > 1 and length >= 2 * pool:  # never pool a window away
                modules.append(nn.MaxPool1d(pool))
                length //= pool
            if p["dropout"]:
                modules.append(nn.Dropout(p["dropout"]))
            width = filters
        self.features = nn.Sequential(*modules)
        self.head = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.transpose(1, 2)).mean(dim=2))  # type: ignore[no-any-return]


class MLPClassifier(TorchAlgorithm):
    """`mlp_classifier`: a feed-forward network over rows, softmax over the labels."""

    name, task = "mlp_classifier", "classification"

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        return mlp(inputs, outputs, self.params)


class MLPRegressor(TorchAlgorithm):
    """`mlp_regressor`: a feed-forward network over rows predicting a number."""

    name, task = "mlp_regressor", "regression"

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        return mlp(inputs, outputs, self.params)


class Autoencoder(TorchAlgorithm):
    """`autoencoder`: learns to reconstruct normal rows; a row it reconstructs
    worse than `threshold_quantile` of the training rows is an anomaly."""

    name, task = "autoencoder", "anomaly"

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        layers = list(self.params["layers"])
        encoder, width = dense_stack(inputs, layers, self.params)
        decoder, width = dense_stack(width, layers[-2::-1], {**self.params, "dropout": 0.0})
        return nn.Sequential(*encoder, *decoder, nn.Linear(width, outputs))


class RecurrentClassifier(TorchAlgorithm):
    """Base of the LSTM and GRU entries: windows in, the last step's state to the head."""

    cell: ClassVar[str] = "lstm"
    sequence = True

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        return RecurrentNet(self.cell, inputs, outputs, list(self.params["layers"]), float(self.params["dropout"]))


class LSTMClassifier(RecurrentClassifier):
    """`lstm_classifier`: classifies a window of records with an LSTM."""

    name, task, cell = "lstm_classifier", "classification", "lstm"


class GRUClassifier(RecurrentClassifier):
    """`gru_classifier`: classifies a window of records with a GRU."""

    name, task, cell = "gru_classifier", "classification", "gru"


class LSTMForecaster(RecurrentClassifier):
    """`lstm_forecaster`: the next `sequence.horizon` values of the target from a window, with an LSTM."""

    name, task, cell = "lstm_forecaster", "regression", "lstm"


class GRUForecaster(RecurrentClassifier):
    """`gru_forecaster`: the next `sequence.horizon` values of the target from a window, with a GRU."""

    name, task, cell = "gru_forecaster", "regression", "gru"


class CNN1DClassifier(TorchAlgorithm):
    """`cnn1d_classifier`: classifies a window of records with 1-D convolutions over time."""

    name, task, sequence = "cnn1d_classifier", "classification", True

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        assert window is not None
        return ConvNet(inputs, outputs, window, self.params)
