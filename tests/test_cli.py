"""The mlrm command line, run as a user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.toolkit.files import ROOT, copy_config_set
from tests.toolkit.processes import env, mlrm_args


def mlrm(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), cwd=cwd, timeout=120)


def test_help_teaches_with_examples() -> None:
    out = mlrm("--help").stdout
    for word in ("validate", "train", "serve", "mlrm train configs/pcb-inspection --data pcb.csv"):
        assert word in out
    assert "example:\n  mlrm serve configs/pcb-inspection" in mlrm("serve", "--help").stdout


def test_data_train_versions_rollback(tmp_path: Path) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    csv = tmp_path / "pcb.csv"
    assert mlrm("data", "pcb-inspection", "--rows", "400", "--output", str(csv)).returncode == 0
    trained = mlrm("train", str(folder), "--data", str(csv))
    assert trained.returncode == 0, trained.stderr
    assert "saved version 2" in trained.stdout and "<- training.metric" in trained.stdout
    assert "fit: fitting random_forest_classifier on" in trained.stderr
    listing = mlrm("versions", str(folder)).stdout
    assert "*       2" in listing
    assert "now 1 (was 2)" in mlrm("rollback", str(folder), "--to", "1").stdout
    assert "*       1" in mlrm("versions", str(folder)).stdout


def test_train_with_missing_file_or_bad_rows_explains(tmp_path: Path) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    missing = mlrm("train", str(folder), "--data", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no such data file" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("volume_pct,result\nabc,OK\n")
    result = mlrm("train", str(folder), "--data", str(bad))
    assert result.returncode == 2 and f"{bad}:1: missing columns 'area_pct' (a required input)" in result.stderr


def test_schema_prints_json_schema() -> None:
    assert '"$id": "https://mlrm.dev/schema/service.schema.json"' in mlrm("schema").stdout
