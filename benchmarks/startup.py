"""Start-up time to ready and sequential single-instance predict latency of `mlrm serve`.

Usage: python benchmarks/startup.py [--runs 5] [--requests 500] [CONFIG_SET ...]
Works on any trained config set: the request body is made from the set's
inputs (mlrm.config.example; a ready window for a set with a sequence
section). Prints medians over runs. Everything binds 127.0.0.1; every wait
has a deadline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import free_port, stop_group  # noqa: E402  (benchmarks/harness.py, beside this script)

from mlrm.config import load_config_set  # noqa: E402
from mlrm.config.example import example_body  # noqa: E402
from mlrm.storage.versions import VersionStore  # noqa: E402

DEFAULT_SETS = [str(ROOT / "configs" / "pcb-inspection"), str(ROOT / "configs" / "breast-cancer")]


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlrm serve exited ({process.returncode}) before it was ready:\n{log.read_text()}")
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise SystemExit(f"mlrm serve was not ready after {timeout:g} s:\n{log.read_text()}")


def one_run(config_set: Path, body: dict[str, Any], n_requests: int, log: Path) -> tuple[float, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlrm", "serve", str(config_set), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        wait_ready(url, process, log)
        ready = time.perf_counter() - started
        latencies = []
        with requests.Session() as session:
            for _ in range(n_requests):
                t = time.perf_counter()
                session.post(f"{url}/v1/predict", json=body, timeout=10).raise_for_status()
                latencies.append(time.perf_counter() - t)
        return ready, latencies
    finally:
        stop_group(process, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config_sets", nargs="*", default=DEFAULT_SETS, metavar="CONFIG_SET",
                        help="trained config set folders (default: configs/pcb-inspection configs/breast-cancer)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    print(f"{'config set':<28} {'ready (s)':>10} {'p50 (ms)':>9} {'p99 (ms)':>9}   medians of {args.runs} runs")
    logs = Path(tempfile.mkdtemp(prefix="mlrm-startup-"))
    for name in args.config_sets:
        folder = Path(name)
        config = load_config_set(folder)  # a bad config set fails here, naming the problem
        if VersionStore(config.learned_dir).current() is None:
            raise SystemExit(f"{folder} has no trained version: mlrm train {folder} --data FILE.csv")
        body = example_body(config)
        readies, p50s, p99s = [], [], []
        for i in range(args.runs):
            ready, lat = one_run(folder, body, args.requests, logs / f"{folder.name}-{i}.log")
            lat.sort()
            readies.append(ready)
            p50s.append(lat[len(lat) // 2] * 1000)
            p99s.append(lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000)
        print(f"{folder.name:<28} {statistics.median(readies):>10.2f} {statistics.median(p50s):>9.2f} "
              f"{statistics.median(p99s):>9.2f}")  # fmt: skip
    print(f"python {sys.version.split()[0]}; nproc {len(os.sched_getaffinity(0))}; logs in {logs}")


if __name__ == "__main__":
    main()
