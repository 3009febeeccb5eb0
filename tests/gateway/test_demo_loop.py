"""The README's path on the demo gateway: three services up, data posted, a retrained
version live, and Ctrl-C stops it all. The commands of docs/tutorial.md's step 8 run as
written; only the ports (the gateway picks free ones here) and the manifest's path change."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlrm.gateway.state import alive
from tests.toolkit.files import ROOT
from tests.toolkit.gateway import status
from tests.toolkit.processes import Process, descendants, env, mlrm_args

pytestmark = pytest.mark.slow

TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text()
GATEWAY_BLOCKS = re.findall(r"<!-- tested: gateway -->\n```sh\n(.*?)```", TUTORIAL, re.S)


def test_demo_gateway_post_data_retrain_live_and_ctrl_c(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    assert len(GATEWAY_BLOCKS) == 2
    shutil.copytree(ROOT / "configs", tmp_path / "configs")  # the training service writes versions here
    (tmp_path / "services").mkdir()
    text = re.sub(r"port: \d+", "port: 0", (ROOT / "services" / "demo.yaml").read_text())
    manifest = tmp_path / "services" / "demo.yaml"
    manifest.write_text(f"root: {tmp_path}\n{text}")

    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=90, what="the status table")
    services = status(manifest)
    assert {s["ready"] for s in services.values()} == {"yes"} and len(services) == 5, services  # and the dashboard
    assert services["air-quality"]["version"] == "1"
    training_url = services["training-service"]["url"]

    shell_env = env()
    shell_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{shell_env['PATH']}"
    script = "set -euo pipefail\n" + "\n".join(GATEWAY_BLOCKS)
    script = script.replace("http://localhost:8100", training_url).replace("localhost:8100", training_url)
    script = script.replace("services/demo.yaml", str(manifest))
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=shell_env, capture_output=True, text=True,
                            timeout=180)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert '"accepted":1' in out.replace(" ", ""), out  # the consumer's one reading
    assert "posted var/aq.csv: 600 samples accepted, 0 rejected" in out, out
    assert re.search(r"version \d+ promoted: now current", out), out
    assert re.search(r"^air-quality +http://127.0.0.1:\d+ +[2-9] +yes ", out, re.M), out  # live, no restart
    assert status(manifest)["air-quality"]["restarts"] == 0

    everything = descendants(up.pid)
    up.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert up.proc.wait(timeout=60) == 0, up.output()
    assert "gateway 'demo' stopped" in up.output()
    left = [pid for pid in everything if alive(pid)]
    assert not left, f"processes left after Ctrl-C: {left}"


def test_the_readme_shows_the_tutorials_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"watch a retrained version go live.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    shown = [line.split("#")[0].strip() for line in block[1].splitlines()]
    assert shown == [line.strip() for line in GATEWAY_BLOCKS[1].splitlines()]
