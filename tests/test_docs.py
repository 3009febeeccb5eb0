"""The README's examples run as written; generated docs are current."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlrm.config.reference import markdown
from tests.toolkit.files import ROOT
from tests.toolkit.processes import env, free_port

README = (ROOT / "README.md").read_text()


def runnable_blocks(text: str) -> list[str]:
    """The ```sh blocks right after a `<!-- tested -->` line."""
    return re.findall(r"<!-- tested -->\n```sh\n(.*?)```", text, re.S)


def run_blocks(blocks: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the blocks as one bash script in cwd, port 8000 replaced by a free one."""
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("8000", str(free_port()))
    run_env = env()
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env['PATH']}"
    # Own process group, killed whole at the end: a server a failed script left
    # running would otherwise hold the output pipes open and hang the test.
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=cwd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(killed after {timeout}s)"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


BLOCKS = runnable_blocks(README)


def test_readme_has_tested_examples() -> None:
    assert len(BLOCKS) >= 3


def clone(tmp_path: Path) -> Path:
    """A git clone of this checkout, as a user has it (skips when this is not a git checkout)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot check that the documented steps leave git status clean")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(tmp_path / "mlrm")], check=True, timeout=60)
    return tmp_path / "mlrm"


def git_status(checkout: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout


def test_readme_examples_run_and_leave_the_checkout_clean(tmp_path: Path) -> None:
    checkout = clone(tmp_path)
    result = run_blocks(BLOCKS, checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: configs/pcb-inspection" in result.stdout
    assert "saved version 2" in result.stdout
    assert '"predictions":[' in result.stdout and '"version":2' in result.stdout
    assert '"name":"machine-anomaly","path":' in result.stdout and '"predictions":[false]' in result.stdout
    assert git_status(checkout) == "", "the README's tour changed files git tracks or left files it does not ignore"


def test_tutorial_runs_from_a_template_to_a_retrained_model_live(tmp_path: Path) -> None:
    blocks = runnable_blocks((ROOT / "docs" / "tutorial.md").read_text())
    assert len(blocks) >= 8
    checkout = clone(tmp_path)
    workdir = checkout / "var" / "tutorial"  # where step 1 says to work in a clone
    workdir.mkdir(parents=True)
    result = run_blocks(blocks, workdir)
    assert git_status(checkout) == "", "the tutorial left files in the checkout that git sees"
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "wrote configs/my-pump/service.yaml" in out and "ok: configs/my-pump" in out
    assert "saved version 1" in out and "saved version 2" in out
    answers = re.findall(r'\{"predictions":\["([^"]+)"\].*?"version":(\d)\}', out)
    assert answers == [("normal", "1"), ("overheating", "2")], out
    assert '"pointer":"/instances/0/rpm"' in out
    assert "serving version 1" in out


def test_config_reference_is_generated_from_the_schema() -> None:
    assert (ROOT / "docs" / "config-reference.md").read_text() == markdown(), (
        "regenerate: python -m mlrm schema --markdown -o docs/config-reference.md"
    )


@pytest.mark.slow
def test_demo_command_starts_the_gateway_and_predicts(tmp_path: Path) -> None:
    """scripts/demo as the README's first command runs it, on free ports and a private data folder."""
    text = (ROOT / "services" / "demo.yaml").read_text()
    text = re.sub(r"port: \d+", "port: 0", text)
    text = text.replace("data_dir: var/demo", f"data_dir: {tmp_path / 'var'}").replace(
        "log_dir: var/demo/logs", f"log_dir: {tmp_path / 'logs'}"
    )
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(f"root: {ROOT}\n" + text)
    run_env = env()
    run_env.update(MANIFEST=str(manifest), MLRM_DEMO_ONCE="1")
    result = subprocess.run(["scripts/demo"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"predictions": [' in result.stdout and "Ctrl-C stops it all" in result.stdout
    for name in ("training-service", "pcb-inspection", "breast-cancer", "air-quality"):
        assert re.search(rf"^{name} +http://127.0.0.1:\d+ .* yes ", result.stdout, re.M), result.stdout
