"""`mlrm export systemd`: a unit systemd accepts, that stops and reloads `mlrm up` the way it expects."""

from __future__ import annotations

import configparser
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlrm.cli import main
from mlrm.gateway.cli import RELOAD_SIGNAL, STOP_SIGNALS
from mlrm.gateway.manifest import load_manifest
from mlrm.gateway.systemd import unit
from tests.toolkit.files import ROOT

DEMO = ROOT / "services" / "demo.yaml"


def service_section(text: str) -> configparser.SectionProxy:
    parsed = configparser.ConfigParser(interpolation=None, strict=True)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parsed.read_string(text)
    assert set(parsed.sections()) == {"Unit", "Service", "Install"}
    return parsed["Service"]


@pytest.fixture(scope="module")
def text() -> str:
    return unit(load_manifest(DEMO, config_sets=False), "services/demo.yaml", "mlrm")


def test_systemd_accepts_the_unit(text: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    file = tmp_path / "mlrm-demo.service"
    file.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warned about: none may be there.
    assert "mlrm-demo.service" not in result.stderr, result.stderr


def test_it_starts_mlrm_up_with_this_python_in_the_manifest_root(text: str) -> None:
    service = service_section(text)
    assert shlex.split(service["ExecStart"]) == [sys.executable, "-m", "mlrm", "up", str(DEMO)]
    assert service["WorkingDirectory"] == str(ROOT) and service["User"] == "mlrm"


def test_stop_and_reload_signals_are_the_ones_mlrm_up_handles(text: str) -> None:
    service = service_section(text)
    assert signal.Signals[service["KillSignal"]] in STOP_SIGNALS
    # mixed: the signal goes to `mlrm up` alone, which stops its services in order; SIGKILL for what is left.
    assert service["KillMode"] == "mixed"
    kill, flag, pid = shlex.split(service["ExecReload"])
    assert Path(kill).name == "kill" and signal.Signals["SIG" + flag.lstrip("-")] == RELOAD_SIGNAL
    assert pid == "$MAINPID"
    stop_timeout = load_manifest(DEMO, config_sets=False).supervision.stop_timeout
    assert int(service["TimeoutStopSec"]) > 2 * stop_timeout  # ML services, then the training service


def test_a_config_error_is_not_restarted(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    service = service_section(text)
    assert service["Restart"] == "on-failure"
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nservices: {}\n")
    assert main(["up", str(broken)]) == int(service["RestartPreventExitStatus"])
    assert "broken.yaml" in capsys.readouterr().err


def test_the_command_writes_the_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlrm-demo.service"
    assert main(["export", "systemd", "services/demo.yaml", "--user", "plant", "-o", str(out)]) == 0
    assert "/etc/systemd/system/mlrm-demo.service" in capsys.readouterr().out
    assert service_section(out.read_text())["User"] == "plant"
