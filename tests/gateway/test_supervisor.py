"""The supervisor on small real processes: backoff, restart counts, logs, stop."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from mlrm.gateway.manifest import Probes
from mlrm.gateway.supervisor import LogFile
from tests.toolkit.files import copy_config_set
from tests.toolkit.gateway import http_server, launch, supervisor
from tests.toolkit.processes import Process, free_port, mlrm_args

# mlrm's log format (mlrm/logs.py): UTC time once, level, component, message.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ [\w.-]+: ")


def test_a_crashing_service_is_restarted_with_doubling_delays_and_counted(tmp_path: Path) -> None:
    events: list[str] = []
    crash = launch("crash", "import sys; print('about to fail', flush=True); sys.exit(3)")
    sup = supervisor(
        tmp_path, [crash], events, "supervision: {backoff_initial: 0.1, backoff_max: 0.4, stable_after: 60}"
    )
    sup.start()
    deadline = time.monotonic() + 10
    while sup.children[0].restarts < 4 and time.monotonic() < deadline:
        sup.check()
        time.sleep(0.02)
    sup.stop(timeout=2)
    delays = re.findall(r"crash: exited with status 3 after [\d.]+s; restart #\d+ in ([\d.]+)s", "\n".join(events))
    assert delays[:5] == ["0.1", "0.2", "0.4", "0.4", "0.4"][: len(delays[:5])] and len(delays) >= 4
    assert sup.children[0].restarts >= 4
    log = (tmp_path / "var" / "logs" / "crash.log").read_text().splitlines()
    assert all(STAMP.match(line) for line in log), log[:3]
    assert sum(" INFO crash: about to fail" in line for line in log) >= 4  # a print, wrapped
    assert any(" WARNING up: crash: exited with status 3" in line for line in log)
    gateway_log = (tmp_path / "var" / "logs" / "gateway.log").read_text()
    assert "crash: restarted (restart #1" in gateway_log


def test_live_but_not_ready_is_reported_and_a_service_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    events: list[str] = []
    port = free_port()
    stubborn = launch("stubborn", http_server(port, ignore_term=True), port, Probes("/", "/not-ready"))
    sup = supervisor(tmp_path, [stubborn], events)
    sup.start()
    assert sup.children[0].state == "running"
    assert any("stubborn: live, not ready yet" in e for e in events), events
    pid = sup.children[0].pid
    sup.stop(timeout=0.5)  # the event and the exit by SIGKILL below prove it did not wait for the process
    assert any("stubborn: still running after 0.5s; SIGKILL" in e for e in events), events
    assert sup.children[0].poll() == -signal.SIGKILL and pid is not None
    assert sup.state()["services"][0]["state"] == "stopped"


def test_a_service_that_stops_on_sigterm_is_not_killed(tmp_path: Path) -> None:
    events: list[str] = []
    port = free_port()
    sup = supervisor(tmp_path, [launch("polite", http_server(port), port)], events)
    sup.start()
    assert any("polite: ready at" in e for e in events), events
    sup.stop(timeout=5)
    assert sup.children[0].poll() == -signal.SIGTERM
    assert not any("SIGKILL" in e for e in events)


def test_logs_rotate_at_their_size_limit_and_keep_the_newest_files(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "svc.log", max_bytes=400, keep=2)
    for i in range(40):
        log.write(f"line {i:02d} " + "x" * 20)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size <= 400 for p in tmp_path.iterdir())
    assert "line 39" in (tmp_path / "svc.log").read_text()
    newest_rotated = (tmp_path / "svc.log.1").read_text().splitlines()
    assert int((tmp_path / "svc.log").read_text().split()[4]) == int(newest_rotated[-1].split()[4]) + 1


def test_a_json_gateway_logs_json_in_every_service_and_on_the_console(
    tmp_path: Path, spawn: Callable[..., Process]
) -> None:
    copy_config_set("breast-cancer", tmp_path / "configs")
    manifest = tmp_path / "services" / "gw.yaml"
    manifest.parent.mkdir()
    manifest.write_text(
        "name: gw\nlog_format: json\n"
        "services:\n  breast-cancer: {config_set: configs/breast-cancer, port: 0}\n"
        "supervision: {stop_timeout: 10}\n"
    )
    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=90, what="printing the status table")
    assert up.stop() == 0
    logs = {p.name: p.read_text().splitlines() for p in (tmp_path / "var" / "gw" / "logs").glob("*.log")}
    assert {"gateway.log", "breast-cancer.log"} <= set(logs), sorted(logs)
    for name, lines in logs.items():
        records = [json.loads(line) for line in lines]  # every line of every log is one JSON object
        assert records and all({"ts", "level", "component", "message"} <= set(r) for r in records), name
    components = {json.loads(line)["component"] for line in logs["breast-cancer.log"]}
    assert {"up", "breast-cancer.gunicorn", "breast-cancer.serve"} <= components, components
    events = [json.loads(line) for line in up.log_path.read_text().splitlines() if line.startswith('{"ts": ')]
    assert any(e["component"] == "up" and "breast-cancer: ready at" in e["message"] for e in events), events
