"""The supervisor on small real processes: backoff, restart counts, logs, stop."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

from mlrm.gateway.commands import Launch, Plan, child_env
from mlrm.gateway.manifest import Probes, load_manifest
from mlrm.gateway.supervisor import LogFile, Supervisor
from tests.gateway.test_manifest import write
from tests.servers import free_port

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


ROOT_PROBES = Probes("/", "/")


def launch(name: str, code: str, port: int = 0, probes: Probes = ROOT_PROBES) -> Launch:
    return Launch(
        name, "ml", [sys.executable, "-c", code], f"http://127.0.0.1:{port}", probes, Path.cwd(), port, child_env()
    )


def http_server(port: int, ignore_term: bool = False) -> str:
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    return (
        f"import signal, http.server; {ignore}print('serving', flush=True); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )


def supervisor(tmp_path: Path, launches: list[Launch], events: list[str], supervision: str = "") -> Supervisor:
    manifest = load_manifest(
        write(tmp_path, f"name: t\nservices:\n  a: {{config_set: configs/breast-cancer, port: 0}}\n{supervision}")
    )
    return Supervisor(manifest, Plan(launches, {}, None), say=events.append, tick=0.02)


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
    assert sum("about to fail" in line for line in log) >= 4
    assert any("mlrm up: crash: exited with status 3" in line for line in log)
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
    started = time.monotonic()
    sup.stop(timeout=0.5)
    assert time.monotonic() - started < 5
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
    assert int((tmp_path / "svc.log").read_text().split()[2]) == int(newest_rotated[-1].split()[2]) + 1
