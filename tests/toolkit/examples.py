"""Running the example consumers under examples/ the way a user does."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.toolkit.files import ROOT
from tests.toolkit.processes import env

EXAMPLES = ROOT / "examples"


def run_example(script: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run examples/<script> to the end; its summary line as a dict."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args, "--interval", "0"],
        capture_output=True, text=True, env=env(), cwd=EXAMPLES, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: "), result.stdout
    figures: dict[str, Any] = json.loads(last.removeprefix("summary: "))
    figures["stdout"] = result.stdout
    return figures
