"""docs/deployment.md: its export commands run as written and write what systemd and Kubernetes accept;
the gateway manifest it shows loads; the numbers it quotes are the code's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

from mlrm.gateway.kubernetes import DRAIN_S
from mlrm.gateway.manifest import load_manifest
from mlrm.gateway.systemd import stop_timeout
from mlrm.rest.server import GRACEFUL_TIMEOUT
from tests.toolkit.files import ROOT
from tests.toolkit.processes import env

DOC = (ROOT / "docs" / "deployment.md").read_text()
KUBERNETES = "1.31.0"


def project_view(tmp_path: Path) -> Path:
    """A folder that reads as the project (its manifests, config sets, schemas) and takes the outputs."""
    for name in ("services", "configs", ".mlrm"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def test_the_tested_commands_write_a_unit_and_objects_that_validate(tmp_path: Path) -> None:
    [block] = re.findall(r"<!-- tested -->\n```sh\n(.*?)```", DOC, re.S)
    run_env = env()
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env['PATH']}"
    cwd = project_view(tmp_path)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=run_env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    docs = list(yaml.safe_load_all((cwd / "central.k8s.yaml").read_text()))
    assert {d["metadata"]["namespace"] for d in docs} == {"mlrm"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    # The Secrets the walk-through creates are the ones the objects read.
    header = (cwd / "central.k8s.yaml").read_text().split("---")[0]
    assert "#   central-credentials: client-token, tokens.yaml" in header and "#   central-store: url" in header
    assert "create secret generic central-credentials" in DOC and "--from-file=client-token=" in DOC
    assert "create secret generic central-store \\\n  --from-literal=url=" in DOC and "--from-literal=password=" in DOC
    if shutil.which("systemd-analyze"):
        checked = subprocess.run(["systemd-analyze", "verify", str(cwd / "mlrm-demo.service")], capture_output=True,
                                 text=True, timeout=60)  # fmt: skip
        assert checked.returncode == 0 and "mlrm-demo.service" not in checked.stderr, checked.stderr


def test_the_following_gateway_it_shows_loads(tmp_path: Path) -> None:
    [text] = re.findall(r"```yaml\n(# services/line-1.yaml\n.*?)```", DOC, re.S)
    path = project_view(tmp_path) / "line-1.yaml"
    path.write_text("root: .\n" + text)
    manifest = load_manifest(path)
    assert manifest.training.mode == "remote" and manifest.client_token is not None


def test_the_numbers_it_quotes_are_the_codes() -> None:
    demo = load_manifest(ROOT / "services" / "demo.yaml", config_sets=False)
    assert f"({stop_timeout(demo)} s for the demo)" in DOC
    assert f"a {DRAIN_S} s `preStop`" in DOC and f"gunicorn's {GRACEFUL_TIMEOUT} s" in DOC


def test_the_readme_links_it() -> None:
    assert "](docs/deployment.md)" in (ROOT / "README.md").read_text()
