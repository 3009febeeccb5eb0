"""Seconds from a drift's start to the better version serving, in the drifting-sensor scenario (docs/drift.md).

Each round: a fresh copy of configs/air-quality with training.triggers.drift and training.data, version 1
trained by `mlrm train` on data/initial.csv, a real `mlrm training-service` and `mlrm serve`, and
examples/air_quality_drift.py driving them. Its summary names the versions that took over after the
sensors' calibration began to shift, when, and their error on drifted readings; "better" is the first
with under half the first version's. The table gives each round and the median.

    python benchmarks/drift_recovery.py --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from harness import ROOT, Server, free_port

from mlrm.tools.simulation.rooms import air_quality


def prepare(folder: Path, training_port: int) -> None:
    """The config set of the scenario: its base file, its keys, and version 1 trained on the file."""
    shutil.copytree(ROOT / "configs" / "air-quality", folder, ignore=shutil.ignore_patterns("learned"))
    rows = air_quality(rows=600, seed=7)
    (folder / "data").mkdir()
    with (folder / "data" / "initial.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    raw = yaml.safe_load((folder / "service.yaml").read_text(encoding="utf-8"))
    raw["serving"] = {"reload_interval": 0.5, "drift": {"window": 60, "min_rows": 100}}
    raw["training"]["triggers"] = {"new_samples": None, "drift": {"threshold": 0.25, "min_rows": 300}}
    raw["training"]["data"] = {"files": ["data/initial.csv"], "samples": {"last": 600}}
    raw["feedback"] = {"training_service": f"http://127.0.0.1:{training_port}", "retry_interval": 0.5}
    (folder / "service.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    train = [sys.executable, "-m", "mlrm", "train", str(folder), "--data", str(folder / "data" / "initial.csv")]
    subprocess.run(train, check=True, capture_output=True, cwd=ROOT)


def one_round(work: Path, readings: int) -> dict[str, Any]:
    root = work / "configs"
    training_port, port = free_port(), free_port()
    prepare(root / "air-quality", training_port)
    store = f"sqlite:///{work / 'training.sqlite'}"
    training = Server(
        ["training-service", "--config-root", str(root), "--port", str(training_port), "--store", store,
         "--poll-interval", "0.1"],
        work / "training.log",
    )  # fmt: skip
    serve = Server(["serve", str(root / "air-quality"), "--port", str(port)], work / "serve.log")
    try:
        training.wait_http(f"http://127.0.0.1:{training_port}/v1/health")
        serve.wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
        example = [
            sys.executable, str(ROOT / "examples" / "air_quality_drift.py"), "--url", f"http://127.0.0.1:{port}",
            "--training-url", f"http://127.0.0.1:{training_port}", "--count", str(readings), "--quiet",
        ]  # fmt: skip
        out = subprocess.run(example, check=True, capture_output=True, text=True, cwd=ROOT / "examples").stdout
    finally:
        serve.stop()
        training.stop()
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1].removeprefix("summary: "))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="scenario runs (default 3)")
    p.add_argument("--readings", type=int, default=200, help="readings of 24 rooms per run (default 200)")
    args = p.parse_args(argv)
    better: list[float] = []
    print("round  first switch s  better version  better s  MAE v1 before/after drift  MAE better")
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="mlrm-drift-") as tmp:
            figures = one_round(Path(tmp), args.readings)
        mae, found, switches = figures["mae"], figures["better"], figures["switches"]
        first = f"{switches[0]['seconds']:.1f}" if switches else "-"
        if found is None:
            print(f"{n + 1:5d}  {first:>14}  {'none':>14}")
            continue
        better.append(found["seconds"])
        own = mae[f"v{found['version']} after drift"]
        print(
            f"{n + 1:5d}  {first:>14}  {found['version']:>14}  {found['seconds']:8.1f}  "
            f"{mae.get('v1 before drift')!s:>12} / {mae.get('v1 after drift')!s:<12}  {own}"
        )
    if better:
        print(f"median seconds from the drift's start to the better version serving: {statistics.median(better):.1f}")
    return 0 if better else 1


if __name__ == "__main__":
    sys.exit(main())
