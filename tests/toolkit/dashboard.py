"""A dashboard alone, as tests start it: `python -m mlrm.dashboard` over the state file of a
gateway with no services (run by the test's own process), so no gunicorn is needed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tests.toolkit.processes import Process, free_port


def state_file(tmp_path: Path) -> Path:
    """The state file of a gateway 'g' with no services, 'run' by this test process."""
    path = tmp_path / "gateway.json"
    state = {"gateway": "g", "manifest": "services/g.yaml", "pid": os.getpid(), "started_at": "2026-12-01T00:00:00",
             "services": [], "training_url": None, "skipped": {}}  # fmt: skip
    path.write_text(json.dumps(state))
    return path


def dashboard_args(tmp_path: Path, port: int, *extra: str) -> list[str]:
    """argv of a dashboard over state_file(tmp_path) on port."""
    state = ["--state", str(state_file(tmp_path)), "--port", str(port), "--interval", "0.5"]
    return [sys.executable, "-m", "mlrm.dashboard", *state, *extra]


def start_dashboard(spawn: Callable[..., Process], tmp_path: Path, *extra: str) -> tuple[str, Process]:
    """A dashboard on a free loopback port, once it answers its probe: (base URL, process)."""
    port = free_port()
    board = spawn(dashboard_args(tmp_path, port, *extra), name="dashboard")
    url = f"http://127.0.0.1:{port}"
    board.wait_http(url + "/healthz")
    return url, board
