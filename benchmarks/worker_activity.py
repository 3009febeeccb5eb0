"""The worker-activity example, measured: accuracy and training time of the
config set as shipped (trained afresh on the same generated data), and
predict latency in process and over HTTP through the real `mlrm serve`, for
a ready window and for a single buffered record.

    PYTHONPATH=. python benchmarks/worker_activity.py [--rows 96000] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from mlrm.config import load_config_set
from mlrm.core.service import Service
from mlrm.tools.datasets import worker_activity
from mlrm.training import trainer

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_ms(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """Median and 95th percentile of n calls, in milliseconds."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=96000, help="generated IMU records to train on (default 96000)")
    parser.add_argument("--requests", type=int, default=300, help="requests per latency figure")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlrm-bench-"))
    try:
        folder = work / "worker-activity"
        shutil.copytree(ROOT / "configs" / "worker-activity", folder, ignore=shutil.ignore_patterns("learned", "var"))
        config = load_config_set(folder)
        print(f"{config.algorithm} {config.hyperparameters.get('layers')}, load average {os.getloadavg()[0]:.2f}")
        rows = worker_activity(rows=args.rows, seed=7)
        started = time.perf_counter()
        result = trainer.train(config, rows)
        total = time.perf_counter() - started
        size = (config.learned_dir / "versions" / "0001" / "model.pt").stat().st_size
        history = result.model.algorithm.network["history"]  # type: ignore[attr-defined]
        print(f"trained on {args.rows} records = {result.rows} windows in {total:.1f} s "
              f"(fit {result.timings['fit_s']:.1f} s, {history['epochs']} epochs, best {history['best_epoch']}); "
              f"model.pt {size / 1024:.0f} KiB")  # fmt: skip
        print("holdout: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))

        fresh = [{k: v for k, v in r.items() if k != "activity"} for r in worker_activity(rows=4000, seed=11)]
        window = [{k: v for k, v in r.items() if k != "worker"} for r in fresh[:100]]
        service = Service(config)
        n = args.requests
        print(f"\nlatency, median / p95 of {n}:")
        med, p95 = median_ms(lambda: service.predict([{"window": window}]), n)
        print(f"  in process, ready window of 100 records   {med:7.2f} / {p95:6.2f} ms")
        records = iter(fresh * (1 + n // len(fresh)))
        service.predict(fresh[:99])  # fill the buffer: from now on records are answered every 25
        med, p95 = median_ms(lambda: service.predict([dict(next(records), worker="bench")]), n)
        print(f"  in process, one buffered record           {med:7.2f} / {p95:6.2f} ms")

        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        server = subprocess.Popen([sys.executable, "-m", "mlrm", "serve", str(folder), "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            http = requests.Session()

            def post(instances: list[Any]) -> None:
                http.post(f"{url}/v1/predict", json={"instances": instances}, timeout=10).raise_for_status()

            med, p95 = median_ms(lambda: http.get(f"{url}/v2/health/live", timeout=10).raise_for_status(), n)
            print(f"  HTTP (mlrm serve), GET /v2/health/live    {med:7.2f} / {p95:6.2f} ms   (the HTTP floor)")
            med, p95 = median_ms(lambda: post([{"window": window}]), n)
            print(f"  HTTP (mlrm serve), ready window           {med:7.2f} / {p95:6.2f} ms")
            records = iter(fresh * (1 + n // len(fresh)))
            med, p95 = median_ms(lambda: post([dict(next(records), worker="http")]), n)
            print(f"  HTTP (mlrm serve), one buffered record    {med:7.2f} / {p95:6.2f} ms")
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
