"""What the dashboard's polling costs a gateway: CPU and predict latency, with and without it.

Starts one real gateway (`mlrm up`: the training service and pcb-inspection with 2 gunicorn
workers, on free ports, data in a temporary folder), sends predictions at a steady rate from one
client, and measures in alternating windows of the same length: without a dashboard, then with
`python -m mlrm.dashboard` polling the gateway at its default interval (2 s) and one browser's
worth of /api/state reads, and so on for --rounds rounds. Per window: CPU seconds (user + system,
from /proc) of the ML service (master and workers), of the training service (master, workers,
scheduler) and of the dashboard itself, and the client's predict latency p50/p99. Prints the
median of each figure over the rounds, side by side.

    python benchmarks/dashboard_polling.py [--rounds 5] [--seconds 20] [--rate 20] [--interval 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from harness import ROOT, Server, descendants, free_port, stop_group  # benchmarks/harness.py, beside this script

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of pid and every process below it, in seconds (what they used so far)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended between the listing and the read
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def manifest(folder: Path, ml_port: int, training_port: int) -> Path:
    shutil.copytree(ROOT / "configs" / "pcb-inspection", folder / "configs" / "pcb-inspection")
    path = folder / "services" / "bench.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "name: bench\nroot: ..\n"
        f"services:\n  pcb-inspection: {{config_set: configs/pcb-inspection, port: {ml_port}, workers: 2}}\n"
        f"training: {{mode: local, port: {training_port}}}\n"
    )
    return path


class Load:
    """One client posting one PCB row every 1/rate s; the latency of each answer, in ms."""

    def __init__(self, url: str, rate: float) -> None:
        from mlrm.tools.datasets import pcb_inspection

        rows = pcb_inspection(rows=200, seed=3)
        self.bodies = [{"instances": [{k: v for k, v in r.items() if k != "result"}]} for r in rows]
        self.url, self.period = url + "/v1/predict", 1.0 / rate
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        session = requests.Session()
        next_at, i = time.perf_counter(), 0
        while not self.stop.is_set():
            started = time.perf_counter()
            answer = session.post(self.url, json=self.bodies[i % len(self.bodies)], timeout=10)
            answer.raise_for_status()
            self.latencies.append((time.perf_counter() - started) * 1000)
            i += 1
            next_at += self.period
            time.sleep(max(0.0, next_at - time.perf_counter()))

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken


def window(seconds: float, pids: dict[str, int | None], load: Load) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    load.take()
    time.sleep(seconds)
    latencies = sorted(load.take())
    out = {f"{name} CPU %": (cpu_seconds(pid) - before[name]) / seconds * 100 for name, pid in pids.items() if pid}
    out["predict p50 ms"] = statistics.median(latencies)
    out["predict p99 ms"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="windows with and without the dashboard (default 5)")
    p.add_argument("--seconds", type=float, default=20, help="length of one window (default 20 s)")
    p.add_argument("--rate", type=float, default=20, help="predict requests per second (default 20)")
    p.add_argument("--interval", type=float, default=2, help="the dashboard's interval (default 2 s, its default)")
    args = p.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="mlrm-dashboard-bench-"))
    ml_port, training_port, board_port = free_port(), free_port(), free_port()
    up = Server(["up", str(manifest(folder, ml_port, training_port))], folder / "up.log")
    try:
        up.wait_http(f"http://127.0.0.1:{ml_port}/v2/health/ready", timeout=120)
        up.wait_http(f"http://127.0.0.1:{training_port}/v1/health", timeout=120)
        time.sleep(2)  # the status table and the first probes are over
        state = folder / "var" / "bench" / "gateway.json"
        services = {s["name"]: s["pid"] for s in json.loads(state.read_text())["services"]}
        load = Load(f"http://127.0.0.1:{ml_port}", args.rate)
        load.thread.start()
        rows: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
        for r in range(args.rounds):
            pids: dict[str, int | None] = {"ML service": services["pcb-inspection"]}
            pids["training service"] = services["training-service"]
            rows["without"].append(window(args.seconds, pids, load))
            board = subprocess.Popen(
                [sys.executable, "-m", "mlrm.dashboard", "--state", str(state), "--port", str(board_port),
                 "--interval", f"{args.interval:g}"],
                cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            reader = Browser(f"http://127.0.0.1:{board_port}", args.interval)
            try:
                reader.thread.start()
                time.sleep(2 * args.interval)  # its first rounds, and the page's first read
                rows["with"].append(window(args.seconds, {**pids, "dashboard": board.pid}, load))
            finally:
                reader.stop.set()
                stop_group(board)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        load.stop.set()
    finally:
        up.stop()
        shutil.rmtree(folder, ignore_errors=True)

    keys = sorted({k for row in rows["with"] for k in row}, key=lambda k: (k.startswith("predict"), k))
    print(f"\nmedians of {args.rounds} windows of {args.seconds:g} s, {args.rate:g} predict/s, "
          f"dashboard interval {args.interval:g} s, 1 page open")  # fmt: skip
    print(f"{'':<24}{'without':>10}{'with':>10}")
    for key in keys:
        without = [row[key] for row in rows["without"] if key in row]
        with_ = statistics.median(row[key] for row in rows["with"])
        shown = f"{statistics.median(without):.2f}" if without else "-"
        print(f"{key:<24}{shown:>10}{with_:>10.2f}")


class Browser:
    """One open page: GET /api/state every interval, as dashboard.js does."""

    def __init__(self, url: str, interval: float) -> None:
        self.url, self.interval = url + "/api/state", interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                requests.get(self.url, timeout=5)
            except requests.RequestException:
                pass  # not up yet


if __name__ == "__main__":
    main()
