"""How `mlrm serve` runs MQTT beside REST: one bridge process, supervised.

Why a separate process, and not a gunicorn hook or a thread in a worker:

- Exactly one subscriber whatever --workers is. A thread in each worker
  would answer every measurement once per worker; picking "worker 1" breaks
  when gunicorn recycles or times out that worker.
- Sync workers serve one request at a time and are killed when one takes
  longer than the timeout: no place for a long-lived network loop. The
  gunicorn master must stay small, and it reaps *every* child with
  waitpid(-1), so it cannot supervise a process it did not start itself.
- Isolation: a hung broker connection or a crash in the bridge never takes
  REST down, and the reverse.

So `mlrm serve` starts this supervisor (python -m mlrm.mqtt.bridge_process)
before gunicorn, with PROMETHEUS_MULTIPROC_DIR already set, so the bridge's
metrics appear in REST /metrics. The supervisor starts the bridge
(python -m mlrm.mqtt.bridge), restarts it with backoff when it dies (marking
its metrics dead), and stops it on SIGTERM or when `mlrm serve` goes away
(PR_SET_PDEATHSIG on Linux, and a parent check every 0.5 s). The bridge
writes a status file that REST serves at /v1/mqtt.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from mlrm import logs

log = logging.getLogger("mlrm.mqtt.bridge_process")

STATUS_FILE = "status.json"
MAX_BACKOFF = 60.0
STABLE_AFTER = 60.0  # a bridge that ran this long restarts without waiting


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class BridgeProcess:
    """The supervisor child of `mlrm serve` (start it after PROMETHEUS_MULTIPROC_DIR is set)."""

    def __init__(self, proc: subprocess.Popen[bytes], runtime: Path) -> None:
        self.proc, self.runtime = proc, runtime
        self.status_path = runtime / STATUS_FILE
        # gunicorn forks workers inside serve(): a worker that exits unwinds the same
        # try/finally as the master and must not stop the master's bridge.
        self.owner = os.getpid()

    @classmethod
    def start(cls, config_set: Path, log_level: str = "info", broker: str | None = None) -> BridgeProcess:
        """Start the supervisor of one config set's bridge; broker: overrides mqtt.broker (`--mqtt-broker`).

        `mlrm serve a b` starts one per set that takes MQTT: each set keeps its own client, topics,
        durable outbox and status file, exactly as when it is served alone."""
        from mlrm.mqtt.settings import BROKER_ENV

        runtime = Path(tempfile.mkdtemp(prefix="mlrm-mqtt-"))
        args = [sys.executable, "-m", "mlrm.mqtt.bridge_process", str(config_set), "--status", str(runtime / STATUS_FILE),
                "--parent", str(os.getpid()), "--log-level", log_level]  # fmt: skip
        env = dict(os.environ)
        if broker:
            env[BROKER_ENV] = broker
        return cls(subprocess.Popen(args, env=env), runtime)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the supervisor and its bridge (only from the process that started them)."""
        if os.getpid() != self.owner:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        shutil.rmtree(self.runtime, ignore_errors=True)


def _mark_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _end(child: subprocess.Popen[bytes], timeout: float = 12.0) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout)
    _mark_dead(child.pid)


def supervise(config_set: str, status: Path, parent: int | None, log_level: str = "info") -> int:
    """Keep one bridge running until SIGTERM/SIGINT or until the parent is gone."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    args = [sys.executable, "-m", "mlrm.mqtt.bridge", config_set, "--status", str(status), "--log-level", log_level]
    backoff = 1.0

    def parent_alive() -> bool:
        return parent is None or os.getppid() == parent

    while not stop.is_set() and parent_alive():
        child = subprocess.Popen(args, preexec_fn=die_with_parent)
        started = time.monotonic()
        while child.poll() is None and not stop.is_set() and parent_alive():
            stop.wait(0.5)
        if child.poll() is None:
            _end(child)
            break
        _mark_dead(child.pid)
        if stop.wait(0.2) or not parent_alive():  # the bridge got the same SIGTERM as we did
            break
        if time.monotonic() - started >= STABLE_AFTER:
            backoff = 1.0
        log.error("the MQTT bridge exited with code %s; starting it again in %.0f s", child.returncode, backoff)
        stop.wait(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlrm.mqtt.bridge_process")
    p.add_argument("config_set")
    p.add_argument("--status", type=Path, required=True)
    p.add_argument("--parent", type=int)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    die_with_parent()
    logs.configure(Path(args.config_set).name, None, "info")  # mlrm/logs.py: the format the service's lines have
    return supervise(args.config_set, args.status, args.parent, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
