"""Training, evaluation and write-back: the code `mlrm train` and the training
service share. Nothing here knows about HTTP or MQTT."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from mlrm import __version__
from mlrm.algorithms import Progress, no_progress
from mlrm.config.schema import LOWER_IS_BETTER
from mlrm.config.service_config import ServiceConfig
from mlrm.core import profile as profiles
from mlrm.core.encoding import Preprocessor, RowEncoder, TargetEncoder
from mlrm.core.model import Model, make_algorithm
from mlrm.core.sequence import WindowEncoder, split_indices
from mlrm.errors import DataError, FieldError
from mlrm.storage.versions import VersionStore


@dataclass
class Dataset:
    """Encoded training rows: X (with NaN for missing), y (codes or floats).

    For a sequence config set X holds windows (n, window, features) and
    groups the stream of each window, in time order within a stream.
    """

    X: np.ndarray
    y: np.ndarray | None
    rejected: list[FieldError] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # Index into the input records of each kept row (X[j] came from records[rows[j]]); tabular only.
    rows: list[int] = field(default_factory=list)
    groups: np.ndarray | None = None
    # Index of every record that passed validation (for windows: records, not windows), and how many came in.
    accepted: list[int] = field(default_factory=list)
    total: int = 0

    @property
    def rejected_rows(self) -> int:
        """Records rejected (one record may have several problems in `rejected`)."""
        return self.total - len(self.accepted)

    def __len__(self) -> int:
        return len(self.X)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.X).tobytes())
        if self.y is not None:
            digest.update(np.ascontiguousarray(self.y).tobytes())
        return "sha256:" + digest.hexdigest()

    def take(self, index: np.ndarray) -> Dataset:
        groups = None if self.groups is None else self.groups[index]
        return Dataset(self.X[index], None if self.y is None else self.y[index], groups=groups)


@dataclass
class TrainingResult:
    version: int | None
    metrics: dict[str, float]
    rows: int
    rejected: list[FieldError]
    timings: dict[str, float]
    model: Model


def dataset(
    config: ServiceConfig,
    records: list[dict[str, Any]],
    *,
    strings: bool = False,
    pointer: str = "/rows",
    invalid: Mapping[int, list[FieldError]] | None = None,
) -> Dataset:
    """Validate and encode labelled records exactly as predict validates inputs.

    Problems are reported by JSON pointer under `pointer` (e.g. /rows/3/volume_pct).
    With strings=True (CSV files) columns that are neither an input, the
    target nor a sequence field are ignored and listed in Dataset.ignored; in
    JSON records they are rejected like an unknown feature in a predict
    request. `invalid` records (found bad while reading) are rejected with their problems.
    """
    windows = WindowEncoder.of(config)
    encoder = windows.rows if windows else RowEncoder(config)
    target = config.target
    known = encoder.names | ({target.name} if target else set()) | (windows.spec.fields if windows else set())
    columns = set().union(*(r.keys() for r in records if isinstance(r, dict))) if strings and records else set()
    ignored = sorted(columns - known)
    if ignored:
        records = [{k: v for k, v in r.items() if k in known} if isinstance(r, dict) else r for r in records]
    invalid = invalid or {}
    if windows is not None:
        w = windows.training_windows(records, strings=strings, pointer=pointer, invalid=set(invalid))
        rejected = [e for i in sorted(invalid) for e in invalid[i]] + w.rejected
        return Dataset(w.X, w.y, rejected, ignored, groups=w.groups, accepted=w.accepted, total=len(records))
    keep = encoder.names if strings else None
    features = [
        {k: v for k, v in r.items() if (keep is None or k in keep) and (not target or k != target.name)}
        if isinstance(r, dict) else r
        for r in records
    ]  # fmt: skip
    X, errors, kept = encoder.encode_collect(features, pointer, strings=strings)
    if invalid:
        errors = [e for i in sorted(invalid) for e in invalid[i]] + errors
        good = np.array([i not in invalid for i in kept], dtype=bool)
        X, kept = X[good], [i for i in kept if i not in invalid]
    if target is None:
        return Dataset(X, None, errors, ignored, rows=kept, accepted=kept, total=len(records))
    targets = TargetEncoder(config)
    y = np.empty(len(kept))
    good = np.ones(len(kept), dtype=bool)
    for j, i in enumerate(kept):
        y[j], message = targets.encode_one(records[i].get(target.name))
        if message:
            errors.append(FieldError(f"{pointer}/{i}/{target.name}", message))
            good[j] = False
    rows = [i for j, i in enumerate(kept) if good[j]]
    return Dataset(X[good], y[good], errors, ignored, rows=rows, accepted=rows, total=len(records))


def absent_labels(config: ServiceConfig, records: list[dict[str, Any]], data: Dataset) -> list[str]:
    """Labels of target.labels that no accepted record has (a model cannot learn to predict them)."""
    if config.task != "classification" or config.target is None:
        return []
    name = config.target.name
    seen = {str(records[i].get(name, "")).strip() for i in data.accepted}
    return [str(label) for label in config.labels if str(label) not in seen]


def absent_label_warning(label: str) -> str:
    """The warning for a declared label that no training row has; `mlrm train` local and remote print it."""
    return (f"warning: no training row has the label {label!r} of target.labels, so the model cannot learn to "
            f"predict it. Add rows labelled {label!r}, or remove it from target.labels.")  # fmt: skip


def split(config: ServiceConfig, data: Dataset) -> tuple[Dataset, Dataset]:
    """Holdout split by training.holdout and training.seed (stratified when it can be)."""
    if data.groups is not None:
        train_index, hold_index = split_indices(config, data.groups)
        return data.take(train_index), data.take(hold_index)
    section = config.training
    rng = np.random.default_rng(section.seed)
    n = len(data)
    n_hold = max(1, int(round(n * section.holdout)))
    if config.task == "classification" and data.y is not None:
        hold: list[int] = []
        for code in np.unique(data.y):
            idx = rng.permutation(np.flatnonzero(data.y == code))
            hold.extend(idx[: int(round(len(idx) * n_hold / n))].tolist())
        hold_idx = np.array(sorted(hold), dtype=np.int64)
    else:
        hold_idx = np.sort(rng.permutation(n)[:n_hold])
    mask = np.zeros(n, dtype=bool)
    mask[hold_idx] = True
    return data.take(np.flatnonzero(~mask)), data.take(np.flatnonzero(mask))


def fit(config: ServiceConfig, data: Dataset, progress: Progress = no_progress) -> Model:
    """Fit preprocessing and the algorithm on data; an unsaved Model."""
    if config.task == "classification" and data.y is not None and len(np.unique(data.y)) < 2:
        # Some algorithms fail with a traceback here and others learn a constant: neither helps anyone.
        only = ", ".join(repr(str(config.labels[int(c)])) for c in np.unique(data.y))
        raise DataError(
            f"every training row has the label {only or 'none'}: a classifier needs rows of at least two of "
            f"target.labels ({', '.join(map(str, config.labels))}). Add rows with another label."
        )
    encoder = RowEncoder(config)
    windows = WindowEncoder.of(config, encoder)
    section = config.preprocessing
    rows = data.X.reshape(-1, data.X.shape[-1])  # records of windows, for per-feature statistics
    pre = Preprocessor.fit(rows, windows.scaled if windows else encoder.scaled, section.missing, section.scaling)
    model = Model(config, pre, make_algorithm(config))
    n_classes = len(config.labels) if config.task == "classification" else None
    y = data.y.astype(np.int64) if (data.y is not None and config.task == "classification") else data.y
    model.algorithm.fit(model.features(data.X), y, n_classes=n_classes, progress=progress, seed=config.training.seed)
    return model


def evaluate(config: ServiceConfig, model: Model, data: Dataset) -> dict[str, float]:
    """Every metric that fits the task, on data."""
    from sklearn import metrics as m

    prediction = model.predict_matrix(data.X)
    if config.task == "anomaly":
        return {"anomaly_rate": float(np.mean(prediction.values))}
    assert data.y is not None
    if config.task == "regression":
        return {
            "rmse": float(math.sqrt(m.mean_squared_error(data.y, prediction.values))),
            "mae": float(m.mean_absolute_error(data.y, prediction.values)),
            "r2": float(m.r2_score(data.y, prediction.values)) if len(data) > 1 else 0.0,
        }
    y, p = data.y.astype(np.int64), prediction.values
    labels = list(range(len(config.labels)))
    kw: dict[str, Any] = {"labels": labels, "zero_division": 0}
    return {
        "accuracy": float(m.accuracy_score(y, p)),
        "balanced_accuracy": float(
            m.recall_score(y, p, average="macro", labels=sorted(set(y.tolist())), zero_division=0)
        ),
        "f1_macro": float(m.f1_score(y, p, average="macro", **kw)),
        "f1_weighted": float(m.f1_score(y, p, average="weighted", **kw)),
        "precision_macro": float(m.precision_score(y, p, average="macro", **kw)),
        "recall_macro": float(m.recall_score(y, p, average="macro", **kw)),
    }


def record_profile(config: ServiceConfig, model: Model, train_part: Dataset, holdout: Dataset) -> None:
    """Attach the reference profile (mlrm.core.profile: the inputs and target it was fitted on, its predictions
    on the holdout) to a fitted model; save() stores it as an artifact of the version."""
    predictions = model.predict_matrix(holdout.X).values if len(holdout) else np.empty(0)
    model.profile = profiles.build(config, train_part.X, train_part.y, predictions)


def better(metric: str, a: float, b: float) -> float:
    """How much better a is than b for this metric (positive = better)."""
    return b - a if metric in LOWER_IS_BETTER else a - b


def save(
    config: ServiceConfig,
    model: Model,
    metrics: dict[str, float],
    *,
    data: dict[str, Any],
    timings: dict[str, float],
    make_current: bool = True,
    extra: dict[str, Any] | None = None,
) -> int:
    """Write a new version of the learned state atomically; returns its number."""
    parameters = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mlrm_version": __version__,
        "algorithm": config.algorithm,
        "metric": config.metric,
        "metrics": metrics,
        "data": data,
        "timings": timings,
        **(extra or {}),
        "preprocessing": model.preprocessor.to_dict(),
        "signature": config.signature(),
        "resolved_config": config.resolved(),
    }
    store = VersionStore(config.learned_dir)
    files = model.algorithm.dump()
    if model.profile is not None:
        files[profiles.PROFILE] = profiles.dumps(model.profile)
    version = store.write(parameters, files, make_current=make_current)
    store.prune(config.training.keep_versions)
    model.version = version
    return version


def train(
    config: ServiceConfig,
    records: list[dict[str, Any]],
    *,
    strings: bool = False,
    progress: Progress = no_progress,
    write: bool = True,
    data: Dataset | None = None,
) -> TrainingResult:
    """Validate, split, fit, evaluate and (if write) store a new current version.

    `data`: records already validated by dataset() (the CLI reports on them before training).
    """
    started = time.perf_counter()
    progress("data", None, f"validating {len(records)} rows")
    if data is None:
        data = dataset(config, records, strings=strings)
    if data.ignored:
        progress("data", None, f"ignoring columns that are not inputs or the target: {', '.join(data.ignored)}")
    minimum = config.training.min_rows
    if len(data) < minimum:
        raise DataError(
            f"only {len(data)} usable {'windows' if data.groups is not None else 'rows'} ({data.rejected_rows} rows rejected); training.min_rows is {minimum}. "
            + (f"First problem: {data.rejected[0].pointer}: {data.rejected[0].detail}" if data.rejected else "")
        )
    train_part, holdout = split(config, data)
    progress(
        "data", 1.0, f"{len(train_part)} rows to train, {len(holdout)} held out, {data.rejected_rows} rows rejected"
    )
    t_fit = time.perf_counter()
    model = fit(config, train_part, progress)
    t_eval = time.perf_counter()
    progress("evaluate", None, f"evaluating on {len(holdout)} held-out rows")
    metrics = evaluate(config, model, holdout)
    record_profile(config, model, train_part, holdout)
    done = time.perf_counter()
    timings = {
        "fit_s": round(t_eval - t_fit, 4),
        "evaluate_s": round(done - t_eval, 4),
        "total_s": round(done - started, 4),
    }
    version = None
    if write:
        info = {
            "rows": len(data),
            "train_rows": len(train_part),
            "holdout_rows": len(holdout),
            "fingerprint": data.fingerprint(),
        }
        version = save(config, model, metrics, data=info, timings=timings)
        progress("save", 1.0, f"saved version {version}")
    return TrainingResult(version, metrics, len(data), data.rejected, timings, model)
