"""What the benchmark scripts share: a free port, and a real mlrm process started, awaited and stopped.

Benchmarks never import from tests/: they run from a checkout as a user runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

# One way to pick a port and stop a process group, shared with `mlrm bench` (which ships in the wheel).
from mlrm.tools.bench.processes import free_port, stop_group
from mlrm.tools.bench.procstat import tree

__all__ = ["ROOT", "Server", "descendants", "free_port", "stop_group"]

ROOT = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> list[int]:
    """Every living process below pid (from /proc), sorted."""
    return sorted(tree(pid)[1:])


class Server:
    """`python -m mlrm ARGS` from this checkout, its output in log, in a process group of its own."""

    def __init__(self, args: list[str], log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log, self.args = log, ["mlrm", *args]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlrm", *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                start_new_session=True,
            )  # fmt: skip

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        """Until url answers 200; SystemExit with the log when the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{' '.join(self.args)} exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise SystemExit(f"{' '.join(self.args)} not answering {url} after {timeout:g} s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after timeout."""
        stop_group(self.proc, timeout)
