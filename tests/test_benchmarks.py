"""The benchmark scripts run (on tiny settings); the serving one's model export is faithful.

No MLServer or wrk here: benchmarks/serving.py installs MLServer itself, and only when run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mlrm.config import load_config_set
from mlrm.core.model import Model
from mlrm.storage.versions import VersionStore
from mlrm.tools.datasets import pcb_inspection
from tests.toolkit.files import ROOT

BENCHMARKS = ROOT / "benchmarks"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_inprocess_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "inprocess.json"
    args = [sys.executable, str(BENCHMARKS / "predict_inprocess.py"), "--iterations", "20", "--max-seconds", "0.05",
            "--rows", "300", "--algorithms", "logistic_regression,random_forest_classifier", "--out", str(out)]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for name in ("logistic_regression", "random_forest_classifier"):
        for path in ("Model.predict ", "Model.predict_matrix", "estimator.predict ", "estimator.predict_proba"):
            assert any(line.startswith(name) and path in line for line in result.stdout.splitlines()), (name, path)
    report = json.loads(out.read_text())
    cell = report["results"]["logistic_regression"]["Model.predict"]["1"]
    assert 0 < cell["best_us"] <= cell["median_us"] and 1 <= cell["n"] <= 20


def test_drift_overhead_benchmark_times_monitoring_on_and_off(tmp_path: Path) -> None:
    out = tmp_path / "drift.json"
    args = [sys.executable, str(BENCHMARKS / "drift_overhead.py"), "--rounds", "1", "--calls", "3", "--warm", "0",
            "--out", str(out)]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert sorted(report["results"]) == ["core, 1 row", "core, 64 rows", "fast path, 1 row", "fast path, 64 rows"]
    assert all(r["on_us"] > 0 and r["off_us"] > 0 for r in report["results"].values())
    assert "monitor counted" in result.stdout


def test_inprocess_benchmark_measures_windowed_networks(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "inprocess.json"
    args = [sys.executable, str(BENCHMARKS / "predict_inprocess.py"), "--iterations", "5", "--max-seconds", "0.05",
            "--algorithms", "cnn1d_classifier", "--out", str(out)]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("cnn1d_classifier")]
    assert len(lines) == 2 and "Model.predict " in lines[0] and "Model.predict_matrix" in lines[1], result.stdout
    assert json.loads(out.read_text())["skipped"] == {}


def test_serving_help_teaches_the_command() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "serving.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    for words in ("python benchmarks/serving.py", "--quick", "--duration", "--reps", "--out", "MLServer", "wrk"):
        assert words in result.stdout


def test_mlserver_export_answers_as_mlrm() -> None:
    """The Pipeline MLServer serves computes mlrm's model: same labels, same probabilities."""
    serving = _load("serving")
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_inspection(40, seed=3)]
    for name in ("pcb-inspection-lr", "pcb-inspection"):
        config = load_config_set(ROOT / "configs" / name)
        store = VersionStore(config.learned_dir)
        current = store.current()
        assert current is not None
        model = Model.from_record(config, store.read(current))
        pipeline = serving.export_pipeline(model)
        X = model.encoder.encode(rows)
        assert X.shape == (len(rows), len(model.encoder.columns))
        X[0, 3] = X[1, 0] = np.nan  # missing readings: both impute with mlrm's learned fill
        expected = model.predict_matrix(X)
        assert expected.probabilities is not None
        assert (pipeline.predict(X) == expected.values).all()
        assert np.allclose(pipeline.predict_proba(X), expected.probabilities, rtol=0, atol=1e-12)


def test_startup_benchmark_runs_on_any_trained_config_set(tmp_path: Path) -> None:
    """Request bodies come from each set's inputs, so a set with a name no code knows works too."""
    copy = tmp_path / "pump-watch"
    shutil.copytree(ROOT / "configs" / "machine-anomaly", copy)
    yaml_file = copy / "service.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("name: machine-anomaly", "name: pump-watch"))
    args = [sys.executable, str(BENCHMARKS / "startup.py"), "--runs", "1", "--requests", "3",
            str(ROOT / "configs" / "air-quality"), str(copy)]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == {"air-quality", "pump-watch"}
    assert all(len(figures) == 3 and float(figures[0]) > 0 for figures in rows.values()), result.stdout


def test_every_benchmark_script_starts_and_teaches_its_options() -> None:
    """`--help` of each script: an import that broke (a moved module) fails here, not in a user's hands."""
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "harness.py")
    runs = {
        p.name: subprocess.Popen(
            [sys.executable, str(p), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        for p in scripts
    }
    failed = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=120)
        if run.returncode != 0 or "usage:" not in out:
            failed[name] = err[-2000:]
    assert len(runs) >= 9 and not failed, failed
