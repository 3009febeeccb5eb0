"""What mlrm's torch wrapper costs: training and predict time of an MLP and an
LSTM through the mlrm adapter, against the same network and loop written
directly in torch, on the same data (same epochs, batch size, optimizer and
threads). Runs alternate between the two so drift hits both; medians, and
the overhead of the fastest runs (the least disturbed on a shared machine).

    PYTHONPATH=. python benchmarks/torch_overhead.py [--reps 9] [--threads 1]

Validation and early stopping are off in the mlrm runs, since the plain loop
has neither; everything else (progress reports, loss tracking, seeding,
determinism settings, tensor conversion) is in the measured time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mlrm import algorithms

N_CLASSES = 4


def mlp_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(20000, 32))
    y = (X[:, :4] @ np.array([1.0, -1.0, 0.5, 2.0]) > 0).astype(np.int64) * 2 + (X[:, 5] > 0)
    return X, y


def lstm_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(2000, 50, 6))
    y = (X[:, -10:, 0].mean(axis=1) > 0).astype(np.int64) * 2 + (X[:, :, 1].mean(axis=1) > 0)
    return X, y


class PlainLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 32, batch_first=True)
        self.head = nn.Linear(32, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])  # type: ignore[no-any-return]


def plain_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, N_CLASSES))


def plain_fit(
    build: Callable[[], nn.Module], X: np.ndarray, y: np.ndarray, epochs: int, batch: int, seed: int
) -> nn.Module:
    """The training loop a person writes by hand."""
    torch.manual_seed(seed)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(Xt))
        for start in range(0, len(Xt), batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def plain_predict(model: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(X.astype(np.float32))), dim=1).numpy()  # type: ignore[no-any-return]


Times = tuple[list[float], list[float]]


def paired(ours: Callable[[], Any], theirs: Callable[[], Any], reps: int) -> tuple[Times, Times]:
    """Time both reps times, alternating which goes first, so load and warm caches
    hit both alike: (wall ours, wall theirs), (CPU ours, CPU theirs). CPU time of
    this process is the steadier figure on a machine other work shares."""
    wall: Times = ([], [])
    cpu: Times = ([], [])
    for rep in range(reps):
        order = ((0, ours), (1, theirs)) if rep % 2 == 0 else ((1, theirs), (0, ours))
        for side, fn in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[side].append(time.process_time() - started_cpu)
            wall[side].append(time.perf_counter() - started)
    return wall, cpu


def compare(name: str, mlrm_name: str, params: dict[str, Any], build: Callable[[], nn.Module],
            X: np.ndarray, y: np.ndarray, epochs: int, batch: int, reps: int, threads: int) -> None:  # fmt: skip
    adapter = algorithms.get(mlrm_name)
    settings = dict(params, epochs=epochs, batch_size=batch, learning_rate=0.001, optimizer="adam",
                    patience=None, validation_fraction=0.0, threads=threads, device="cpu")  # fmt: skip
    fitted: dict[str, Any] = {}

    def ours() -> None:
        fitted["ours"] = adapter(**settings).fit(X, y, n_classes=N_CLASSES, seed=0)

    def theirs() -> None:
        torch.set_num_threads(threads)
        fitted["theirs"] = plain_fit(build, X, y, epochs, batch, 0)

    paired(ours, theirs, 1)  # warm-up: first calls pay for lazy initialisation
    fit_wall, fit_cpu = paired(ours, theirs, reps)
    model, plain = fitted["ours"], fitted["theirs"]
    assert sum(p.numel() for p in model.module.parameters()) == sum(p.numel() for p in plain.parameters())
    ours_acc = float(np.mean(model.predict(X).values == y))
    theirs_acc = float(np.mean(plain_predict(plain, X).argmax(axis=1) == y))
    torch.set_num_threads(1)  # mlrm predicts single-threaded; the plain model does the same here
    one, batch_rows = X[:1], X[:1000]
    one_wall, one_cpu = paired(lambda: model.predict(one), lambda: plain_predict(plain, one), 2000)
    many_wall, many_cpu = paired(lambda: model.predict(batch_rows), lambda: plain_predict(plain, batch_rows), 20 * reps)

    def row(what: str, times: Times, unit: str, scale: float) -> None:
        ours, theirs = statistics.median(times[0]), statistics.median(times[1])
        best = 100 * (min(times[0]) / min(times[1]) - 1)  # the fastest runs: least disturbed by other work
        print(f"  {what:<34} {ours * scale:>10.3f} {theirs * scale:>10.3f} {unit:<4} "
              f"{100 * (ours / theirs - 1):>+7.1f}% {best:>+9.1f}%")  # fmt: skip

    print(f"{name}: {X.shape[0]} {'windows' if X.ndim == 3 else 'rows'} of shape {X.shape[1:]}, {epochs} epochs, "
          f"batch {batch}, {threads} thread(s), {reps} repetitions")  # fmt: skip
    print(f"  {'median of':<34} {'mlrm':>10} {'torch':>10} {'':<4} {'overhead':>8} {'of minima':>10}")
    row("training, wall time", fit_wall, "s", 1)
    row("training, CPU time", fit_cpu, "s", 1)
    row("predict 1 row, wall time", one_wall, "ms", 1e3)
    row("predict 1 row, CPU time", one_cpu, "ms", 1e3)
    row("predict 1000 rows, wall time", many_wall, "ms", 1e3)
    row("predict 1000 rows, CPU time", many_cpu, "ms", 1e3)
    print(
        f"  training accuracy: mlrm {ours_acc:.3f}, torch {theirs_acc:.3f}; training wall times "
        f"mlrm {[round(t, 2) for t in fit_wall[0]]} torch {[round(t, 2) for t in fit_wall[1]]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one epoch, three repetitions (a smoke run)")
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    X, y = mlp_data(rng)
    compare("MLP [64, 64]", "mlp_classifier", {"layers": [64, 64]}, plain_mlp, X, y,
            1 if args.quick else 5, 64, reps, args.threads)  # fmt: skip
    X, y = lstm_data(rng)
    compare("LSTM [32]", "lstm_classifier", {"layers": [32]}, PlainLSTM, X, y,
            1 if args.quick else 3, 64, reps, args.threads)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
