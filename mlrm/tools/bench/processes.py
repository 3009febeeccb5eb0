"""The processes `mlrm bench` starts: the training child, and `mlrm serve` of the copy when no target is given.

Each runs with this Python (`sys.executable -m ...`), so it works from an
installed wheel as from a checkout, in a session of its own, and is stopped
with its whole group (SIGTERM, then SIGKILL) on every way out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from mlrm.errors import StateError
from mlrm.tools.bench import energy
from mlrm.tools.bench.procstat import Sampler

Progress = Any  # mlrm.algorithms.Progress: (stage, fraction, message) -> None
START_TIMEOUT = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # mlrm serve makes its own
    return env


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM a process started in a session of its own, and its group; SIGKILL what is left after timeout."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def train(folder: Path, data: Path, work: Path, progress: Progress, interval: float) -> dict[str, Any]:
    """Fit the config set at folder on data in a child process; its timings, CPU, memory and energy."""
    out, log = work / "training.json", work / "training.log"
    command = [sys.executable, "-m", "mlrm.tools.bench.fit", str(folder), str(data), str(out)]
    meter = energy.Meter()
    with meter, open(log, "wb") as sink:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        try:
            with Sampler(proc.pid, interval) as sampler:
                proc.wait()  # the progress printer's heartbeat says it still works
        finally:
            stop_group(proc)
        wall = time.monotonic() - started
    if proc.returncode != 0 or not out.exists():
        raise StateError(f"training failed (exit {proc.returncode}); its output ends:\n{_tail(log)}")
    child = json.loads(out.read_text(encoding="utf-8"))
    sampled = sampler.summary() or {}
    return {
        "rows": child["rows"],
        "unit": child["unit"],
        "records": child["records"],
        "rejected": child["rejected"],
        "version": child["version"],
        "metrics": child["metrics"],
        "fit_s": child["timings"]["fit_s"],
        "evaluate_s": child["timings"]["evaluate_s"],
        "train_s": child["timings"]["total_s"],
        "process_s": round(wall, 3),
        "cpu_s": child["process_cpu_s"],
        "cpu_mean_pct": round(100 * child["process_cpu_s"] / child["run_s"], 1) if child["run_s"] else None,
        "cpu_peak_pct": sampled.get("cpu_peak_pct"),
        "peak_rss_mib": round(child["peak_rss_kib"] / 1024, 1),
        "peak_pss_mib": sampled.get("peak_pss_mib"),
        "energy": meter.result,
    }


class LocalServer:
    """`mlrm serve FOLDER` on a free loopback port, for as long as the with block runs."""

    def __init__(self, folder: Path, work: Path, workers: int, mqtt_broker: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / f"serve-{self.port}.log"
        self.command = [sys.executable, "-m", "mlrm", "serve", str(folder), "--port", str(self.port),
                        "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
        if mqtt_broker:
            self.command += ["--mqtt-broker", mqtt_broker]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalServer:
        with open(self.log, "wb") as sink:
            self.proc = subprocess.Popen(
                self.command, stdout=sink, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StateError(f"mlrm serve exited ({self.proc.returncode}); its output ends:\n{_tail(self.log)}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        stop_group(self.proc)
        raise StateError(f"mlrm serve not ready at {self.url} after {START_TIMEOUT:g} s; output:\n{_tail(self.log)}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_group(self.proc)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None
