"""The README's examples run as written; generated docs are current."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlrm.config.reference import markdown
from tests.servers import ROOT, env, free_port

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"<!-- tested -->\n```sh\n(.*?)```", README, re.S)


def test_readme_has_tested_examples() -> None:
    assert len(BLOCKS) >= 3


def test_readme_examples_run(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    port = str(free_port())
    script = "set -euo pipefail\n" + "\n".join(BLOCKS).replace("8000", port)
    run_env = env()
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env['PATH']}"
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: configs/pcb-inspection" in result.stdout
    assert "saved version 2" in result.stdout
    assert '"predictions":[' in result.stdout and '"version":2' in result.stdout


def test_config_reference_is_generated_from_the_schema() -> None:
    assert (ROOT / "docs" / "config-reference.md").read_text() == markdown(), (
        "regenerate: python -m mlrm schema --markdown -o docs/config-reference.md"
    )


@pytest.mark.slow
def test_demo_command_serves_and_predicts() -> None:
    run_env = env()
    run_env.update(PORT=str(free_port()), MLRM_DEMO_ONCE="1")
    result = subprocess.run(
        ["scripts/demo"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"predictions": [' in result.stdout and "Ctrl-C stops it" in result.stdout
