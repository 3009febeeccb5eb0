"""In-process predict cost of every registered algorithm: one row and 64 rows, no HTTP.

    python benchmarks/predict_inprocess.py [--iterations 2000] [--max-seconds 1.0] [--rows 1000]
                                           [--algorithms logistic_regression,random_forest_classifier]
                                           [--out benchmarks/results/predict_inprocess.json]

Each algorithm is trained with mlrm's own training code (mlrm.training.trainer.train, nothing written to disk)
on generated PCB inspection rows (mlrm.tools.datasets.pcb_inspection):
  classification   the PCB verdict (OK / error / pseudo-error) from the 16 readings
  regression       volume_pct from the other 15 readings
  anomaly          isolation_forest / autoencoder on the 16 readings, no target
random_forest_classifier uses configs/pcb-inspection's settings (100 trees, depth 12, no scaling) and
every other algorithm configs/pcb-inspection-lr's (standard scaling), with its own default hyperparameters
(torch ones with few epochs: training speed does not matter here).

Then, on the same rows, it times (time.perf_counter_ns, up to --iterations calls or --max-seconds per
measurement, whichever ends first; a few untimed calls first):
  Model.predict          mlrm's whole path: rows as dicts -> validated, encoded -> answer dict
  Model.predict_matrix   from encoded rows: preprocessing + the adapter (predict and predict_proba)
  estimator.predict      the fitted scikit-learn estimator alone, on already preprocessed rows
  estimator.predict_proba  likewise, where the estimator has it
Windowed algorithms (lstm_*, gru_*, cnn1d_*) read windows of records: they are trained on generated wrist
IMU records (mlrm.tools.datasets.worker_activity) with configs/worker-activity's sequence section (windows of
100 records; the forecasters predict acc_x one record ahead), and "1 row" / "64 rows" are ready windows:
  Model.predict          the service's window path (mlrm.core.sequence_input): {"window": [100 records]} -> answer
  Model.predict_matrix   from encoded windows: preprocessing + the network
Reports median and best in µs per call. Torch algorithms (needs the torch extra) are skipped when torch
does not import.
OMP_NUM_THREADS is 1 unless set, as under `mlrm serve`.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/scikit-learn load OpenMP, as `mlrm serve` does

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from mlrm import algorithms  # noqa: E402

# Torch algorithms: few epochs (what is timed is predict, not the quality of the fit).
TORCH_HYPERPARAMETERS: dict[str, Any] = {"epochs": 3, "patience": 1}
DBN_HYPERPARAMETERS: dict[str, Any] = {"pretrain_epochs": 1}
REGRESSION_TARGET = "volume_pct"
FORECAST_TARGET = "acc_x"  # the windowed forecasters: the next record's acc_x
WINDOW_RECORDS = 6000  # generated IMU records for the windowed algorithms: 64 windows of one stream at least


def service_yaml(name: str) -> dict[str, Any]:
    """A config set for algorithm `name` on the PCB inputs, by the algorithm's task."""
    base = "pcb-inspection" if name == "random_forest_classifier" else "pcb-inspection-lr"
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load((ROOT / "configs" / base / "service.yaml").read_text()))
    task = algorithms.task_of(name)
    data["name"] = f"bench-{name.replace('_', '-')}"
    hyper: dict[str, Any] = {}
    if name == "random_forest_classifier" or name == "logistic_regression":
        hyper = dict(data["algorithm"].get("hyperparameters") or {})
    if algorithms.requirement_of(name) == "torch":
        hyper.update(TORCH_HYPERPARAMETERS)
        if name.startswith("dbn"):
            hyper.update(DBN_HYPERPARAMETERS)
    data["algorithm"] = {"name": name, "hyperparameters": hyper}
    data["training"].pop("metric", None)  # each task's default metric
    if task == "regression":
        data["inputs"].pop(REGRESSION_TARGET)
        data["target"] = {"name": REGRESSION_TARGET, "kind": "regression"}
    elif task == "anomaly":
        data.pop("target")
    return data


def windowed_yaml(name: str) -> dict[str, Any]:
    """configs/worker-activity with algorithm `name` (a forecaster: acc_x one record ahead)."""
    text = (ROOT / "configs" / "worker-activity" / "service.yaml").read_text()
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(text))
    data["name"] = f"bench-{name.replace('_', '-')}"
    data["algorithm"] = {"name": name, "hyperparameters": dict(TORCH_HYPERPARAMETERS)}
    data["training"].pop("metric", None)
    if algorithms.task_of(name) == "regression":
        data["target"] = {"name": FORECAST_TARGET, "kind": "regression"}
        data["sequence"].pop("label", None)
        data["sequence"]["horizon"] = 1
    return data


def config_set(data: dict[str, Any], folder: Path) -> Any:
    """Write service.yaml into a folder of its own under `folder` and load it as mlrm does."""
    from mlrm.config import load_config_set

    config_dir = folder / data["name"]
    config_dir.mkdir()
    (config_dir / "service.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config_set(config_dir)


def train_windowed(name: str, folder: Path) -> tuple[Any, list[dict[str, Any]]]:
    """(mlrm Model, ready-window instances of one worker's stream)."""
    from mlrm.tools.datasets import worker_activity
    from mlrm.training.trainer import train as mlrm_train

    data = windowed_yaml(name)
    config = config_set(data, folder)
    records = worker_activity(WINDOW_RECORDS, seed=7)
    if config.task == "regression":
        records = [{k: v for k, v in r.items() if k != "activity"} for r in records]
    model = mlrm_train(config, records, write=False).model
    inputs = list(data["inputs"])
    stream = [{k: r[k] for k in inputs} for r in records if r["worker"] == records[0]["worker"]]
    size, step = int(data["sequence"]["window"]), int(data["sequence"]["step"])
    instances = [{"window": stream[i : i + size]} for i in range(0, len(stream) - size + 1, step)]
    if len(instances) < 64:
        raise SystemExit(f"{name}: only {len(instances)} windows in one stream; raise WINDOW_RECORDS")
    return model, instances


def train(name: str, rows: list[dict[str, Any]], folder: Path) -> tuple[Any, list[dict[str, Any]]]:
    """(mlrm Model trained by mlrm.training.trainer.train, the rows as predict requests carry them)."""
    from mlrm.training.trainer import train as mlrm_train

    config = config_set(service_yaml(name), folder)
    drop = {"result"} | ({REGRESSION_TARGET} if config.task == "regression" else set())
    records = [{k: v for k, v in r.items() if k != "result" or config.task == "classification"} for r in rows]
    model = mlrm_train(config, records, write=False).model
    instances = [{k: v for k, v in r.items() if k not in drop} for r in rows]
    return model, instances


def timeit(call: Callable[[], Any], iterations: int, max_seconds: float) -> dict[str, float]:
    """Median and best µs per call over up to `iterations` calls within `max_seconds` (at least 5)."""
    for _ in range(3):
        call()
    times: list[int] = []
    deadline = time.perf_counter_ns() + int(max_seconds * 1e9)
    clock = time.perf_counter_ns
    for i in range(iterations):
        t0 = clock()
        call()
        t1 = clock()
        times.append(t1 - t0)
        if t1 > deadline and i >= 4:
            break
    return {"median_us": statistics.median(times) / 1000, "best_us": min(times) / 1000, "n": len(times)}


def measure(name: str, rows: list[dict[str, Any]], folder: Path, iterations: int, max_seconds: float) -> dict[str, Any]:
    if algorithms.takes_windows(name):
        return measure_windowed(name, folder, iterations, max_seconds)
    model, instances = train(name, rows, folder)
    out: dict[str, Any] = {"task": model.config.task}
    for n in (1, 64):
        batch = instances[:n]
        encoded = model.encoder.encode(batch)
        X = model.features(encoded)
        paths: dict[str, Callable[[], Any]] = {
            "Model.predict": partial(model.predict, batch),
            "Model.predict_matrix": partial(model.predict_matrix, encoded),
        }
        estimator = getattr(model.algorithm, "estimator", None)
        if estimator is not None and hasattr(estimator, "predict"):
            paths["estimator.predict"] = partial(estimator.predict, X)
            if hasattr(estimator, "predict_proba"):
                paths["estimator.predict_proba"] = partial(estimator.predict_proba, X)
        for path, call in paths.items():
            out.setdefault(path, {})[str(n)] = timeit(call, iterations, max_seconds)
        gc.collect()
    return out


def measure_windowed(name: str, folder: Path, iterations: int, max_seconds: float) -> dict[str, Any]:
    from mlrm.core.sequence_input import SequenceInput

    model, instances = train_windowed(name, folder)
    service_path = SequenceInput(model.config)
    out: dict[str, Any] = {"task": model.config.task}
    for n in (1, 64):
        batch = instances[:n]
        encoded = np.stack(
            [model.windows.window(w["window"], f"/instances/{i}/window")[0] for i, w in enumerate(batch)]
        )
        answer = service_path.predict(model, batch)
        assert len(answer["predictions"]) == n and None not in answer["predictions"], answer
        paths: dict[str, Callable[[], Any]] = {
            "Model.predict": partial(service_path.predict, model, batch),
            "Model.predict_matrix": partial(model.predict_matrix, encoded),
        }
        for path, call in paths.items():
            out.setdefault(path, {})[str(n)] = timeit(call, iterations, max_seconds)
        gc.collect()
    return out


PATHS = ["Model.predict", "Model.predict_matrix", "estimator.predict", "estimator.predict_proba"]


def table(results: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'algorithm':<36}{'path':<26}{'1 row med':>11}{'1 row best':>11}{'64 rows med':>12}{'64 rows best':>13}"
        f"{'µs/row @64':>11}"
    )
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        for path in PATHS:
            if path not in r:
                continue
            one, many = r[path]["1"], r[path]["64"]
            lines.append(
                f"{name:<36}{path:<26}{one['median_us']:>11.1f}{one['best_us']:>11.1f}{many['median_us']:>12.1f}"
                f"{many['best_us']:>13.1f}{many['median_us'] / 64:>11.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/predict_inprocess.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--iterations", type=int, default=2000, help="most calls per measurement (default 2000)")
    p.add_argument("--max-seconds", type=float, default=1.0, help="most seconds per measurement (default 1.0)")
    p.add_argument("--rows", type=int, default=1000, help="generated PCB rows to train on (default 1000)")
    p.add_argument("--algorithms", default="", help="comma-separated names (default: every one that can run here)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict_inprocess.json")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.rows < 100:
        p.error("--iterations must be at least 1 and --rows at least 100")

    has_torch = importlib.util.find_spec("torch") is not None
    wanted = [a.strip() for a in args.algorithms.split(",") if a.strip()] or algorithms.names()
    unknown = sorted(set(wanted) - set(algorithms.names()))
    if unknown:
        p.error(f"unknown algorithms {unknown}; choose from {', '.join(algorithms.names())}")
    skipped: dict[str, str] = {}
    chosen = []
    for name in wanted:
        if algorithms.requirement_of(name) == "torch" and not has_torch:
            skipped[name] = "needs the torch extra (torch does not import)"
        else:
            chosen.append(name)

    from mlrm.tools.datasets import pcb_inspection

    rows = pcb_inspection(args.rows, seed=7)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlrm-inprocess-") as tmp:
        for name in chosen:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = measure(name, rows, Path(tmp), args.iterations, args.max_seconds)

    print(
        f"in-process predict, µs per call (median and best of up to {args.iterations} calls or "
        f"{args.max_seconds:g} s per cell); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(table(results))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    import numpy
    import sklearn

    info = {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": numpy.__version__,
            "torch": has_torch, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "info": info, "results": results, "skipped": skipped}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
