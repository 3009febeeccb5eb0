"""`dbn_classifier`: a deep belief network. A stack of restricted Boltzmann
machines is pre-trained layer by layer with contrastive divergence (CD-k),
unsupervised; their weights then initialise a sigmoid feed-forward network
that is fine-tuned as a classifier by the shared training loop.

The first machine has Gaussian visible units (inputs arrive standardised by
preprocessing), the later ones Bernoulli units over the previous layer's
activation probabilities.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlrm.algorithms.base import Progress
from mlrm.algorithms.torch_adapter import TorchAlgorithm
from mlrm.algorithms.torch_nets import mlp
from mlrm.errors import TrainingError


def rbm(
    data: torch.Tensor,
    hidden: int,
    *,
    gaussian: bool,
    epochs: int,
    learning_rate: float,
    cd_steps: int,
    batch_size: int,
    report: Progress,
    label: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one restricted Boltzmann machine with CD-k; returns (weights visible x hidden, hidden bias)."""
    n, visible = data.shape
    device = data.device
    W = torch.randn(visible, hidden, device=device) * 0.01
    b_v = torch.zeros(visible, device=device)
    b_h = torch.zeros(hidden, device=device)
    with torch.no_grad():
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n).to(device)
            error = torch.zeros((), device=device)
            for start in range(0, n, batch_size):
                v0 = data[order[start : start + batch_size]]
                p_h0 = torch.sigmoid(v0 @ W + b_h)
                h, v, p_h = torch.bernoulli(p_h0), v0, p_h0
                for _ in range(cd_steps):
                    mean = h @ W.T + b_v
                    v = mean if gaussian else torch.sigmoid(mean)
                    p_h = torch.sigmoid(v @ W + b_h)
                    h = torch.bernoulli(p_h)
                m = len(v0)
                W += learning_rate * (v0.T @ p_h0 - v.T @ p_h) / m
                b_v += learning_rate * (v0 - v).mean(dim=0)
                b_h += learning_rate * (p_h0 - p_h).mean(dim=0)
                error += ((v0 - v) ** 2).sum()
            mse = float(error) / (n * visible)
            if not math.isfinite(mse):
                raise TrainingError(
                    f"pre-training {label} diverged (reconstruction error {mse}): lower pretrain_learning_rate"
                )
            report("pretrain", epoch / epochs, f"{label} epoch {epoch}/{epochs}: reconstruction error {mse:.4f}")
    return W, b_h


class DBNClassifier(TorchAlgorithm):
    """`dbn_classifier`: stacked RBMs pre-trained with contrastive divergence, fine-tuned as a classifier."""

    name, task = "dbn_classifier", "classification"

    def build(self, inputs: int, outputs: int, window: int | None) -> nn.Module:
        p = self.params
        return mlp(inputs, outputs, {"layers": p["layers"], "activation": "sigmoid", "dropout": p["dropout"]})

    def pretrain(self, module: nn.Module, X: torch.Tensor, progress: Progress) -> None:
        p = self.params
        epochs = int(p["pretrain_epochs"])
        if epochs == 0:
            return
        hidden_layers = [m for m in module.modules() if isinstance(m, nn.Linear)][:-1]
        data = X
        for i, layer in enumerate(hidden_layers):
            W, b_h = rbm(
                data, layer.out_features, gaussian=i == 0, epochs=epochs,
                learning_rate=float(p["pretrain_learning_rate"]), cd_steps=int(p["cd_steps"]),
                batch_size=int(p["batch_size"]), report=progress, label=f"RBM {i + 1}/{len(hidden_layers)}",
            )  # fmt: skip
            with torch.no_grad():
                layer.weight.copy_(W.T)
                layer.bias.copy_(b_h)
                data = torch.sigmoid(data @ W + b_h)
