"""One service that cannot start never keeps the others from running: a config error is
marked failed (not restarted in a loop) with the end of its log, a training service with
an unusable config set runs degraded, SIGHUP reloads, and the sets named stay untouched."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from mlrm.gateway.commands import Plan
from mlrm.gateway.state import alive
from tests.toolkit.files import ROOT, copy_config_set
from tests.toolkit.gateway import http_server, launch, status, supervisor
from tests.toolkit.processes import Process, descendants, env, free_port, mlrm, mlrm_args
from tests.toolkit.waiting import wait_until

CONFIG_ERROR = (
    "import sys; print('1 problem in config:', flush=True); "
    "print('  x/service.yaml:3: foo: bad key', flush=True); sys.exit(2)"
)


def test_a_config_error_is_marked_failed_with_its_log_not_restarted(tmp_path: Path) -> None:
    events: list[str] = []
    port = free_port()
    good, bad = launch("good", http_server(port), port), launch("bad", CONFIG_ERROR)
    sup = supervisor(tmp_path, [good, bad], events, "supervision: {backoff_initial: 0.05, stable_after: 60}")
    try:
        sup.start()
        failed = sup.children[1]

        def marked_failed() -> bool:
            sup.check()
            return failed.state == "failed"

        wait_until(marked_failed, timeout=10, what="bad marked failed")
        text = "\n".join(events)
        assert "bad: failed: exited with status 2 (a config error)" in text and "not restarted" in text, text
        assert "x/service.yaml:3: foo: bad key" in text  # the end of its log, on the console
        assert failed.reason == "x/service.yaml:3: foo: bad key" and failed.restarts == 0
        assert sup.state()["services"][1]["state"] == "failed"
        assert sup.children[0].state == "running"

        # A reload with the fix starts the failed service and leaves the running one alone.
        kept = sup.children[0].pid
        fixed_port = free_port()
        sup.apply(Plan([good, launch("bad", http_server(fixed_port), fixed_port)], {}, None))
        assert sup.children[0].pid == kept and sup.children[1].state == "running"
        assert "reloaded: 1 service(s) (re)started, 1 kept running" in "\n".join(events)
    finally:
        sup.stop(timeout=5)


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.slow
def test_up_runs_the_others_when_one_fails_reports_degraded_and_reloads_on_sighup(
    tmp_path: Path, spawn: Callable[..., Process]
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs" / ".mlrm", configs / ".mlrm")
    broken = configs / "broken"
    shutil.copytree(copy_config_set("breast-cancer", configs), broken)
    file = broken / "service.yaml"
    text = file.read_text(encoding="utf-8").replace("name: breast-cancer", "name: broken", 1)
    file.write_text(text.replace("algorithm:", "algoritm:", 1), encoding="utf-8")
    before = _tree(configs)
    ports = [free_port() for _ in range(3)]
    manifest = tmp_path / "services" / "gw.yaml"
    manifest.parent.mkdir()
    manifest.write_text(
        "name: gw\nworking_copies: true\n"
        "services:\n"
        f"  breast-cancer: {{config_set: configs/breast-cancer, port: {ports[0]}}}\n"
        f"  broken: {{config_set: configs/broken, port: {ports[1]}}}\n"
        f"training: {{mode: local, port: {ports[2]}}}\n"
        "supervision: {backoff_initial: 0.2, stop_timeout: 10}\n"
    )
    checked = mlrm("up", str(manifest), "--check")
    assert checked.returncode == 2 and "unknown key 'algoritm'" in checked.stderr  # --check still refuses it

    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=90, what="the status table")
    services = status(manifest)
    assert services["breast-cancer"]["ready"] == "yes", services
    assert services["broken"]["ready"] == "failed" and "broken/service.yaml" in services["broken"]["reason"]
    assert services["broken"]["restarts"] == 0
    training = services["training-service"]
    assert training["ready"] == "degraded" and "config set 'broken' is unavailable" in training["reason"]
    table = mlrm("status", str(manifest)).stdout
    assert "training-service: degraded: config set 'broken' is unavailable" in table, table
    assert "broken: failed: " in table and "unknown key 'algoritm'" in up.output()
    answer = requests.get(training["url"] + "/v1/services/broken/samples/stats", timeout=5)
    assert answer.status_code == 503 and "Fix:" in answer.json()["detail"]

    # The operator fixes the set and reloads: the failed service starts, the others keep their processes.
    kept = services["breast-cancer"]["pid"]
    file.write_text(file.read_text(encoding="utf-8").replace("algoritm:", "algorithm:", 1), encoding="utf-8")
    before = _tree(configs)
    os.kill(up.pid, signal.SIGHUP)
    wait_until(lambda: status(manifest)["broken"]["ready"] == "yes", timeout=60, what="broken ready after SIGHUP")
    after = status(manifest)
    assert after["breast-cancer"]["pid"] == kept and after["training-service"]["ready"] == "yes", after
    assert "SIGHUP: reloading" in up.output() and up.alive()

    # Versions land in the working copies under data_dir; the sets the manifest names are untouched.
    copies = tmp_path / "var" / "gw" / "configs"
    assert (copies / "broken" / "learned").is_dir()
    assert (copies / ".mlrm" / "service.schema.json").is_file()  # the copies' first line still finds the schema
    assert _tree(configs) == before

    everything = descendants(up.pid)
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=60) == 0, up.output()
    assert "SIGKILL" not in up.output() and "gateway 'gw' stopped" in up.output()
    assert not [pid for pid in everything if alive(pid)]


@pytest.mark.slow
def test_ctrl_c_in_the_demo_stops_the_gateway_gracefully(tmp_path: Path) -> None:
    """Ctrl-C reaches the terminal's foreground process group: scripts/demo, not `mlrm up`."""
    text = re.sub(r"port: \d+", "port: 0", (ROOT / "services" / "demo.yaml").read_text())
    text = text.replace("data_dir: var/demo", f"data_dir: {tmp_path / 'var'}")
    text = text.replace("log_dir: var/demo/logs", f"log_dir: {tmp_path / 'logs'}")
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(f"root: {ROOT}\n" + text)
    run_env = env()
    run_env["MANIFEST"] = str(manifest)
    log = tmp_path / "demo.out"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            ["scripts/demo"], cwd=ROOT, env=run_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 240
            while "Ctrl-C stops it all" not in log.read_text() and time.monotonic() < deadline:
                assert demo.poll() is None, log.read_text()
                time.sleep(0.2)
            os.killpg(demo.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
            demo.wait(timeout=60)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
    said = log.read_text()
    assert "gateway 'demo' stopped" in said, said
    assert "SIGKILL" not in said and "asked twice" not in said, said
    assert said.count("stopped (exited with status 0)") == 5, said  # training service, 3 ML services, dashboard
