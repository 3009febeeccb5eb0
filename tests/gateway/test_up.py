"""`mlrm up` and `mlrm status` as an operator runs them: real gunicorn
services on free ports, a service killed with SIGKILL comes back and is
counted, SIGTERM to `mlrm up` stops everything and leaves no process behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from mlrm.config import load_config_set
from mlrm.gateway.state import alive
from mlrm.tools.datasets import breast_cancer
from mlrm.training import trainer
from tests.toolkit.files import ROOT, copy_config_set, write_manifest
from tests.toolkit.gateway import status
from tests.toolkit.processes import Process, descendants, mlrm, mlrm_args
from tests.toolkit.waiting import wait_until


def test_up_supervises_restarts_and_stops_everything(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    for name in ("breast-cancer", "machine-anomaly"):
        copy_config_set(name, tmp_path / "configs")
    manifest = tmp_path / "services" / "gw.yaml"
    manifest.parent.mkdir()
    manifest.write_text(
        "name: test-gateway\n"
        "services:\n"
        "  breast-cancer: {config_set: configs/breast-cancer, port: 0}\n"
        "  machine-anomaly: {config_set: configs/machine-anomaly, port: 0, workers: 2}\n"
        "supervision: {backoff_initial: 0.2, stop_timeout: 10}\n"
    )
    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=60, what="printing the status table")
    out = up.output()
    assert "SERVICE          URL" in out and "VERSION  READY  RESTARTS  PID" in out, out
    services = status(manifest)
    assert {s["ready"] for s in services.values()} == {"yes"}
    assert services["breast-cancer"]["version"] == "1" and services["machine-anomaly"]["version"] == "1"
    table = mlrm("status", str(manifest)).stdout
    assert "gateway 'test-gateway'" in table and "machine-anomaly" in table, table
    again = mlrm("up", str(manifest))
    assert again.returncode == 1 and "is already running (pid" in again.stderr

    anomaly = services["machine-anomaly"]
    reading = {"rpm": 1480, "load_pct": 60, "motor_current_a": 12.4, "vibration_rms_mm_s": 1.8,
               "vibration_peak_mm_s": 2.7, "bearing_temp_c": 49}  # fmt: skip
    answer = requests.post(anomaly["url"] + "/v1/predict", json={"instances": [reading]}, timeout=10).json()
    assert answer["predictions"] == [False] and answer["model"]["version"] == 1

    # A new version trained while the gateway runs goes live, and the table says so.
    trainer.train(load_config_set(tmp_path / "configs" / "breast-cancer"), breast_cancer())
    wait_until(lambda: status(manifest)["breast-cancer"]["version"] == "2", timeout=20, what="version 2 live")

    victim = anomaly["pid"]
    old_workers = descendants(victim)
    assert len(old_workers) == 2
    os.kill(victim, signal.SIGKILL)
    restarted: dict[str, Any] = {}

    def back() -> bool:
        restarted.update(status(manifest)["machine-anomaly"])
        return restarted["restarts"] == 1 and restarted["ready"] == "yes"

    wait_until(back, timeout=45, what="machine-anomaly restarted and ready")
    assert restarted["pid"] != victim and restarted["url"] == anomaly["url"]
    assert not any(alive(pid) for pid in old_workers), "workers of the killed master were left running"
    assert "machine-anomaly: killed by SIGKILL" in up.output() and "restart #1" in up.output()
    assert requests.post(anomaly["url"] + "/v1/predict", json={"instances": [reading]}, timeout=10).status_code == 200

    # Two masters, three workers: the restarted master answers ready from its first worker,
    # and may fork the second a moment later on a busy machine.
    everything = wait_until(
        lambda: found if len(found := descendants(up.pid)) >= 5 else None, 20, "5 processes", interval=0.2
    )
    os.kill(up.pid, signal.SIGTERM)
    assert up.proc.wait(timeout=30) == 0, up.output()
    out = up.output()
    assert "breast-cancer: SIGTERM sent" in out and "machine-anomaly: stopped (exited with status 0)" in out, out
    assert "gateway 'test-gateway' stopped" in out
    left = [pid for pid in everything if alive(pid)]
    assert not left, f"processes left after mlrm up stopped: {left}"
    gone = mlrm("status", str(manifest))
    assert gone.returncode == 3 and "is not running" in gone.stdout
    logs = tmp_path / "var" / "test-gateway" / "logs"  # the default: var/<name> under root
    assert {p.name for p in logs.iterdir()} == {"gateway.log", "breast-cancer.log", "machine-anomaly.log"}
    assert "Listening at: http://127.0.0.1:" in (logs / "machine-anomaly.log").read_text()


def test_check_validates_and_shows_the_plan_without_starting(tmp_path: Path) -> None:
    result = mlrm("up", str(ROOT / "services" / "demo.yaml"), "--check")
    assert result.returncode == 0, result.stderr
    assert "ok: " in result.stdout and "serve configs/air-quality --host 127.0.0.1 --port 8003" in result.stdout
    broken = write_manifest(tmp_path, "name: gw\nservices:\n  a: {config_set: configs/breast-cancer, prot: 1}\n")
    validated = mlrm("validate", str(ROOT / "services" / "demo.yaml"), str(broken))
    assert validated.returncode == 2 and "gateway 'demo', 3 services, training local" in validated.stdout
    assert "services.a.prot: unknown key 'prot'. Did you mean 'port'?" in validated.stderr
    assert "Traceback" not in validated.stderr
    missing = write_manifest(tmp_path, "name: gw2\nservices:\n  a: {config_set: configs/nope, port: 0}\n")
    result = mlrm("up", str(missing))  # config sets are checked in a forked child: same errors, same exit status
    assert result.returncode == 2 and "configs/nope/service.yaml: no service.yaml here." in result.stderr
    assert "services.a.config_set: the config set" in result.stderr and "Traceback" not in result.stderr
