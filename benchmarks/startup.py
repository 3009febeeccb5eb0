"""Start-up time to ready and sequential single-row predict latency of `mlrm serve`.

Usage: python benchmarks/startup.py [--runs 5] [--requests 500] [CONFIG_SET ...]
Prints medians over runs. Everything binds 127.0.0.1; loops are bounded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import Process, free_port, mlrm_args  # noqa: E402


def one_run(config_set: Path, n_requests: int, log: Path) -> tuple[float, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = Process(mlrm_args("serve", str(config_set), "--port", str(port)), log)
    try:
        process.wait_until(lambda: requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200, 60)
        ready = time.perf_counter() - started
        body = json.loads((ROOT / "examples" / "requests" / "pcb-inspection.json").read_text())
        if "breast" in config_set.name:
            from mlrm.datasets import breast_cancer

            body = {"instances": [{k: v for k, v in breast_cancer(1)[0].items() if k != "diagnosis"}]}
        else:
            body = {"instances": body["instances"][:1]}
        latencies = []
        with requests.Session() as session:
            for _ in range(n_requests):
                t = time.perf_counter()
                session.post(f"{url}/v1/predict", json=body, timeout=5).raise_for_status()
                latencies.append(time.perf_counter() - t)
        return ready, latencies
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config_sets", nargs="*", default=["configs/pcb-inspection", "configs/breast-cancer"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    print(f"{'config set':<28} {'ready (s)':>10} {'p50 (ms)':>9} {'p99 (ms)':>9}   medians of {args.runs} runs")
    for name in args.config_sets:
        folder = ROOT / name
        readies, p50s, p99s = [], [], []
        for i in range(args.runs):
            ready, lat = one_run(folder, args.requests, Path(f"/tmp/mlrm-startup-{i}.log"))
            lat.sort()
            readies.append(ready)
            p50s.append(lat[len(lat) // 2] * 1000)
            p99s.append(lat[int(len(lat) * 0.99) - 1] * 1000)
        print(f"{name:<28} {statistics.median(readies):>10.2f} {statistics.median(p50s):>9.2f} {statistics.median(p99s):>9.2f}")
    print(f"python {sys.version.split()[0]}; nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
