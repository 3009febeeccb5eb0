"""Scheduler take-over time: two real training services on one PostgreSQL store; SIGKILL
the process group of the one whose scheduler leads, and time until the other's
scheduler has taken the lock and finished its first tick (its heartbeat row is newer
than the kill, as seen through the survivor's GET /v1/health).

Usage: python benchmarks/failover.py [--runs 5] [--postgres URL]

The kill comes at a random moment of the standby's 1 s retry period, so the figure is
the take-over a crash meets on average: about half that period plus one tick. Each run
restarts the killed instance as the new standby before killing the leader
again. The server is --postgres (default $MLRM_TEST_POSTGRES or
postgresql://postgres@127.0.0.1:5432/test); a fresh schema, dropped after.
Prints the median over runs. Everything binds 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import calendar
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Server, free_port  # noqa: E402  (benchmarks/harness.py, beside this script)


def instance(root: Path, store: str, log: Path) -> tuple[str, Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(["training-service", "--config-root", str(root), "--port", str(port), "--store", store], log)
    server.wait_http(f"{url}/v1/health", timeout=60)
    return url, server


def wait_log(server: Server, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log.read_text(errors="replace"):
        if time.monotonic() > deadline or server.proc.poll() is not None:
            raise SystemExit(f"no {text!r} in {server.log}:\n{server.log.read_text(errors='replace')}")
        time.sleep(0.02)


def last_beat(url: str) -> float:
    """The scheduler heartbeat the store holds (unix time), as the instance at url reports it."""
    seen = requests.get(f"{url}/v1/health", timeout=5).json()["scheduler"]["last_seen"]
    if seen is None:
        return 0.0
    whole, ms = seen.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000


def take_over(survivor: str, killed: Server, timeout: float = 60.0) -> float:
    """SIGKILL killed's process group; seconds until survivor's scheduler has beaten after it."""
    os.killpg(killed.proc.pid, signal.SIGKILL)
    at = time.time()
    killed.proc.wait(10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beat = last_beat(survivor)
        if beat > at + 0.001:  # ms resolution: strictly after the kill
            return beat - at
        time.sleep(0.01)
    raise SystemExit(f"no scheduler beat on {survivor} within {timeout}s of the kill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--postgres", default=os.environ.get("MLRM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    import psycopg

    schema = f"mlrm_bench_{uuid.uuid4().hex[:10]}"
    store = f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}"
    tmp = Path(tempfile.mkdtemp(prefix="mlrm-bench-failover-"))
    servers: list[Server] = []
    try:
        root = tmp / "root"
        root.mkdir()
        shutil.copytree(ROOT / "configs" / "pcb-inspection", root / "pcb-inspection")
        leader = instance(root, store, tmp / "a-0.log")
        servers.append(leader[1])
        wait_log(leader[1], "scheduler ready")
        standby = instance(root, store, tmp / "b-0.log")
        servers.append(standby[1])
        wait_log(standby[1], "standing by")
        times = []
        rng = random.Random(7)
        for run in range(args.runs):
            # The standby says "standing by" right after a try: kill at a random phase of its retry period instead.
            time.sleep(rng.uniform(0.0, 2.0))
            took = take_over(standby[0], leader[1])
            times.append(took)
            wait_log(standby[1], "scheduler ready")
            print(f"   run {run + 1}: take-over {took:.3f} s")
            leader, standby = standby, instance(root, store, tmp / f"{'ab'[run % 2]}-{run + 1}.log")
            servers.append(standby[1])
            wait_log(standby[1], "standing by")
        print(
            f"scheduler take-over after SIGKILL of the leader's process group (PostgreSQL store, standby retry "
            f"1 s, poll 0.5 s): median {statistics.median(times):.3f} s, min {min(times):.3f}, max {max(times):.3f}, "
            f"{len(times)} runs"
        )
    finally:
        for server in servers:
            server.stop()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]  # generated name
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
