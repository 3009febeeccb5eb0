"""Start real processes (gunicorn, brokers, services) for tests, and stop them.

Used through the `spawn` fixture in conftest.py, so every process a test
starts is stopped (SIGTERM, then SIGKILL) even when the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    """Environment for child processes: this checkout first on the path."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out["PYTHONUNBUFFERED"] = "1"
    out.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return out


class Process:
    """A child process with its output in a log file."""

    def __init__(self, args: list[str], log: Path, cwd: Path | None = None) -> None:
        self.args, self.log_path = args, log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd or ROOT, env=env(), start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.args} exited ({self.proc.returncode}) before {what}:\n{self.output()}")
            try:
                if check():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.args} not {what} after {timeout}s:\n{self.output()}")

    def wait_http(self, url: str, timeout: float = 30.0, status: int = 200) -> None:
        self.wait_until(lambda: requests.get(url, timeout=2).status_code == status, timeout, f"answering {url}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._log.close()
        return int(self.proc.returncode)

    def kill(self) -> int:
        """SIGKILL the whole process group (a crash, as far as the program knows)."""
        return self.stop(signal.SIGKILL)


def mlrm_args(*args: str) -> list[str]:
    """argv that runs the mlrm CLI of this checkout."""
    return [sys.executable, "-m", "mlrm", *args]
