"""`mlrm up` stays small: supervising a gateway never imports scikit-learn, scipy or skops (about 80 MB)."""

from __future__ import annotations

import subprocess
import sys

from tests.toolkit.files import ROOT
from tests.toolkit.processes import env

SCRIPT = """
import sys
from mlrm.gateway import cli, supervisor
from mlrm.gateway.commands import plan
from mlrm.gateway.manifest import load_manifest
plan(load_manifest(sys.argv[1], config_sets=False), check_ports=False)  # as `mlrm up` and its reload read it
print(sorted(m for m in ("sklearn", "scipy", "skops") if m in sys.modules))
"""


def test_the_supervisor_never_imports_scikit_learn() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "services" / "demo.yaml")], capture_output=True,
                          text=True, env=env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[]"
