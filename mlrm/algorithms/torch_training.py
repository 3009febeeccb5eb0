"""The training loop, device choice, determinism and (de)serialisation every
torch adapter shares.

The loop is deliberately the one a person would write by hand (shuffled
index batches over tensors already on the device, no DataLoader), so the
wrapper costs next to nothing over plain torch; benchmarks/torch_overhead.py
measures that.
"""

from __future__ import annotations

import copy
import io
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.deterministic
from torch import nn

from mlrm.algorithms.base import Progress, no_progress
from mlrm.errors import StateError, TrainingError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICT_BATCH = 4096


@dataclass(frozen=True)
class Settings:
    """The training hyperparameters, typed."""

    optimizer: str = "adam"
    learning_rate: float = 0.001
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 50
    patience: int | None = 10
    validation_fraction: float = 0.1
    device: str = "auto"
    threads: int | None = 1

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Settings:
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})


@dataclass
class History:
    """What the loop did, recorded beside the learned parameters."""

    epochs: int = 0
    best_epoch: int = 0
    stopped_early: bool = False
    train_loss: float = math.nan
    validation_loss: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "train_loss": round(self.train_loss, 6),
            "validation_loss": None if self.validation_loss is None else round(self.validation_loss, 6),
        }


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when torch sees a GPU, else cpu; cuda without a GPU is an error."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("device: cuda, but torch sees no CUDA GPU here. Set device: auto or cpu.")
        # cuBLAS is only deterministic with a fixed workspace; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return torch.device("cuda")
    return torch.device("cpu")


@contextmanager
def reproducible(seed: int, device: torch.device, threads: int | None) -> Iterator[None]:
    """Seeded, deterministic torch for one fit; the caller's RNG state, thread
    count and determinism setting are restored afterwards."""
    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    cudnn_before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    fill_before = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        # Filling every new buffer with NaN only guards against kernels that read memory
        # they never wrote; it made LSTM training about 10% slower (benchmarks/torch_overhead.py).
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        if threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads_before)
            torch.use_deterministic_algorithms(deterministic_before)
            torch.utils.deterministic.fill_uninitialized_memory = fill_before  # type: ignore[attr-defined]
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_before


def optimizer(module: nn.Module, s: Settings) -> torch.optim.Optimizer:
    params = module.parameters()
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.learning_rate, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=s.weight_decay)
    return torch.optim.Adam(params, lr=s.learning_rate, weight_decay=s.weight_decay)


def holdout(n: int, fraction: float, generator: torch.Generator, ordered: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation row indices. Windows (ordered) keep the tail
    for validation: neighbouring windows overlap, so a random pick would
    validate on records the network trains on."""
    n_val = int(round(n * fraction)) if fraction > 0 and n >= 10 else 0
    if n_val == 0:
        return torch.arange(n), torch.arange(0)
    index = torch.arange(n) if ordered else torch.randperm(n, generator=generator)
    return index[: n - n_val], index[n - n_val :]


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _mean_loss(module: nn.Module, loss_fn: Loss, X: torch.Tensor, y: torch.Tensor) -> float:
    module.eval()
    total = torch.zeros((), device=X.device)
    with torch.no_grad():
        for start in range(0, len(X), PREDICT_BATCH):
            xb, yb = X[start : start + PREDICT_BATCH], y[start : start + PREDICT_BATCH]
            total += loss_fn(module(xb), yb) * len(xb)
    return float(total) / max(len(X), 1)


def train(
    module: nn.Module,
    loss_fn: Loss,
    X: torch.Tensor,
    y: torch.Tensor,
    s: Settings,
    *,
    seed: int,
    ordered: bool = False,
    progress: Progress = no_progress,
) -> History:
    """Mini-batch training with optional early stopping on a validation split.

    X and y are on the training device already. With early stopping, the
    weights of the best validation epoch are restored at the end.
    """
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = holdout(len(X), s.validation_fraction, generator, ordered)
    Xt, yt = X[train_idx.to(X.device)], y[train_idx.to(X.device)]
    Xv, yv = X[val_idx.to(X.device)], y[val_idx.to(X.device)]
    validate = len(Xv) > 0
    early = validate and s.patience is not None
    opt = optimizer(module, s)
    n, batch = len(Xt), s.batch_size
    # A batch of one row breaks batch normalisation in training mode.
    drop_single = _has_batch_norm(module) and n > 1
    history = History()
    best_loss, best_state, waited = math.inf, None, 0
    for epoch in range(1, s.epochs + 1):
        module.train()
        order = torch.randperm(n, generator=generator).to(X.device)
        total = torch.zeros((), device=X.device)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            if drop_single and len(idx) == 1:
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(module(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        history.epochs, history.train_loss = epoch, float(total) / max(n, 1)
        if not math.isfinite(history.train_loss):
            raise TrainingError(
                f"the training loss became {history.train_loss} in epoch {epoch}: lower learning_rate "
                f"(now {s.learning_rate}) or check the data for extreme values"
            )
        message = f"epoch {epoch}/{s.epochs}: loss {history.train_loss:.4f}"
        if validate:
            history.validation_loss = _mean_loss(module, loss_fn, Xv, yv)
            message += f", validation loss {history.validation_loss:.4f}"
            if history.validation_loss < best_loss:
                best_loss, waited, history.best_epoch = history.validation_loss, 0, epoch
                if early:
                    best_state = copy.deepcopy(module.state_dict())
            else:
                waited += 1
        else:
            history.best_epoch = epoch
        progress("train", epoch / s.epochs, message)
        if early and s.patience is not None and waited >= s.patience:
            history.stopped_early = True
            progress(
                "train", 1.0,
                f"early stopping after epoch {epoch}: validation loss did not improve for {s.patience} epochs; "
                f"keeping epoch {history.best_epoch} (validation loss {best_loss:.4f})",
            )  # fmt: skip
            break
    if best_state is not None:
        module.load_state_dict(best_state)
        history.validation_loss = best_loss
    module.eval()
    return history


@contextmanager
def one_thread() -> Iterator[None]:
    """Predict on the calling thread only. A small network answers a request
    no faster with more threads, and gunicorn forks its workers after the
    model's smoke prediction: a child whose parent had started torch's
    OpenMP thread pool hangs in its first parallel region."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def forward(module: nn.Module, X: np.ndarray, head: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """Run the network (then head, e.g. softmax) on the CPU, single-threaded, over X in batches; float64 out."""
    with torch.inference_mode(), one_thread():
        if len(X) <= PREDICT_BATCH:  # one request: no batching, no copies beyond the float32 cast
            out = module(torch.from_numpy(np.asarray(X, dtype=np.float32)))
            return (head(out) if head else out).numpy().astype(np.float64)
        outputs = []
        for start in range(0, len(X), PREDICT_BATCH):
            out = module(torch.from_numpy(np.asarray(X[start : start + PREDICT_BATCH], dtype=np.float32)))
            outputs.append((head(out) if head else out).numpy())
    return np.concatenate(outputs).astype(np.float64)


def to_tensor(X: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(X), dtype=dtype, device=device)


def state_bytes(module: nn.Module) -> bytes:
    """The state dict (weights only) as torch.save bytes, from the CPU."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buffer)
    return buffer.getvalue()


def load_state(module: nn.Module, data: bytes, what: str) -> None:
    """Load weights into a freshly built module; never unpickles code."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # torch raises RuntimeError, pickle errors, zip errors...
        raise StateError(
            f"{what}: the stored weights do not fit the network service.yaml describes "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). Retrain it."
        ) from None
    module.eval()
