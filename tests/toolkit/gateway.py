"""A gateway as tests drive it: `mlrm status` read as JSON, and a Supervisor
over small real processes (a crasher, a stub HTTP server) instead of gunicorn."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mlrm.gateway.commands import Launch, Plan, child_env
from mlrm.gateway.manifest import Probes, load_manifest
from mlrm.gateway.supervisor import Supervisor
from tests.toolkit.files import write_manifest
from tests.toolkit.processes import mlrm

ROOT_PROBES = Probes("/", "/")


def status(manifest: Path) -> dict[str, Any]:
    """`mlrm status MANIFEST --json`: each service's row by name."""
    result = mlrm("status", str(manifest), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return {s["name"]: s for s in json.loads(result.stdout)[str(manifest)]["services"]}


def launch(name: str, code: str, port: int = 0, probes: Probes = ROOT_PROBES) -> Launch:
    """A Launch that runs `python -c code` in place of a service."""
    return Launch(
        name, "ml", [sys.executable, "-c", code], f"http://127.0.0.1:{port}", probes, Path.cwd(), port, child_env()
    )


def http_server(port: int, ignore_term: bool = False) -> str:
    """Python code for a stub service answering HTTP on port (optionally deaf to SIGTERM)."""
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    return (
        f"import signal, http.server; {ignore}print('serving', flush=True); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )


def supervisor(tmp_path: Path, launches: list[Launch], events: list[str], supervision: str = "") -> Supervisor:
    """A Supervisor of launches under a one-service manifest in tmp_path; what it says goes to events."""
    manifest = load_manifest(
        write_manifest(
            tmp_path, f"name: t\nservices:\n  a: {{config_set: configs/breast-cancer, port: 0}}\n{supervision}"
        )
    )
    return Supervisor(manifest, Plan(launches, {}, None), say=events.append, tick=0.02)
