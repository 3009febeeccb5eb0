"""Start real processes (gunicorn, services, the CLI) for tests, stop them, and
look at them from outside: their children, their state, the locks they wait on.

Used through the `spawn` fixture in tests/conftest.py, so every process a test
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

from tests.toolkit.files import ROOT


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


def mlrm_args(*args: str) -> list[str]:
    """argv that runs the mlrm CLI of this checkout."""
    return [sys.executable, "-m", "mlrm", *args]


def mlrm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the mlrm CLI to its end, as an operator would, and capture what it says."""
    return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), cwd=ROOT, timeout=60)


class Process:
    """A child process in its own process group, with its output in a log file."""

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
        """Poll check() until it holds; fail at once, with the log, if the process exits first."""
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


def descendants(pid: int) -> set[int]:
    """Every living process below pid (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def state_of(pid: int) -> str:
    """The one-letter state in /proc/PID/stat: R, S, D, T (stopped), Z ...; "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def stop_when(pid: int, situation: Callable[[], bool], timeout: float, what: str) -> None:
    """Freeze pid (SIGSTOP) at a moment where situation() holds, checked again once it is frozen.

    A check seen from outside can be stale by the time the signal lands, so the
    situation is confirmed on the frozen process; when it no longer holds, the
    process goes on (SIGCONT) and we try again at its next pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not situation():
            if not state_of(pid):
                raise RuntimeError(f"process {pid} exited before {what}")
            continue  # a busy poll: the situations we catch may last only milliseconds
        os.kill(pid, signal.SIGSTOP)
        while state_of(pid) not in ("T", ""):
            time.sleep(0.001)
        if situation():
            return
        os.kill(pid, signal.SIGCONT)
    raise TimeoutError(f"process {pid} never caught {what} within {timeout}s")


def flock_waiters(path: Path) -> list[int]:
    """Pids blocked in flock() on path (the '->' lines of /proc/locks)."""
    inode = os.stat(path).st_ino
    waiters = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK":
            if int(fields[6].rsplit(":", 1)[1]) == inode:
                waiters.append(int(fields[5]))
    return waiters
