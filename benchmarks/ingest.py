"""Ingest throughput of the training service and the time from a trigger to
the new version serving.

Usage: python benchmarks/ingest.py [--runs 3] [--seconds 2] [--workers 2] [--postgres URL]

1. Store only (no HTTP): samples/s committed by the store's add_batch for
   batch sizes 1, 10, 100: SQLite with synchronous=FULL (the default: every
   commit fsyncs the WAL) beside synchronous=NORMAL, and PostgreSQL (every
   commit waits for its WAL flush; one connection, like one API worker).
2. HTTP end to end: samples/s acknowledged (202) by a real
   `mlrm training-service`, one client posting JSON batches with an
   Idempotency-Key each, for batch sizes 1, 10, 100; then 4 clients at once;
   on a SQLite store, then on PostgreSQL.

PostgreSQL: --postgres (default $MLRM_TEST_POSTGRES or
postgresql://postgres@127.0.0.1:5432/test); a fresh schema, dropped after.
Its rows are skipped, with the reason, when the server does not answer.
3. Trigger to serving: a real `mlrm serve` (2 workers) and a real training
   service with training.triggers.new_samples; from the 202 of the batch that
   crosses the threshold to the first prediction answered by the new version,
   with the job's own timings beside it.

Prints medians over runs. Everything binds 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Server, free_port  # noqa: E402  (benchmarks/harness.py, beside this script)

from mlrm.config import load_config_set  # noqa: E402
from mlrm.tools.datasets import breast_cancer, pcb_inspection  # noqa: E402
from mlrm.training import trainer  # noqa: E402
from training_service.store import Sample  # noqa: E402
from training_service.store_url import open_store  # noqa: E402

BATCHES = (1, 10, 100)


def copy_set(name: str, root: Path, **sections: dict[str, Any]) -> Path:
    folder = root / name
    shutil.copytree(ROOT / "configs" / name, folder)
    file = folder / "service.yaml"
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    for key, value in sections.items():
        raw[key] = {**(raw.get(key) or {}), **value}
    file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return folder


def sqlite_url(folder: Path, synchronous: str) -> str:
    """A new SQLite store file for one measurement."""
    return f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.sqlite'}?synchronous={synchronous.lower()}"


def postgres_schema(server: str) -> tuple[str | None, str]:
    """(a store URL naming a new schema, why not); the schema is dropped by drop_schema."""
    try:
        import psycopg

        with psycopg.connect(server, connect_timeout=5):
            pass
    except Exception as exc:  # noqa: BLE001 (reported in the table instead of the figures)
        return None, f"{type(exc).__name__}: {str(exc).strip()}"
    return f"{server}{'&' if '?' in server else '?'}schema=mlrm_bench_{uuid.uuid4().hex[:10]}", ""


def drop_schema(server: str, url: str | None) -> None:
    if url is None:
        return
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {url.rsplit('schema=', 1)[1]} CASCADE")  # type: ignore[arg-type]


def store_rate(url: str, batch: int, seconds: float) -> float:
    store = open_store(url)
    store.migrate()
    rows = [Sample(r, r["result"]) for r in pcb_inspection(rows=batch, seed=1)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and done < 1_000_000:
        store.add_batch("pcb-inspection", rows, uuid.uuid4().hex, "f", lambda ids, b: {"n": len(ids)})
        done += batch
    rate = done / (time.perf_counter() - started)
    store.close()
    return rate


def http_rate(url: str, rows: list[dict[str, Any]], batch: int, seconds: float, clients: int = 1) -> float:
    counts = [0] * clients

    def post(n: int) -> None:
        with requests.Session() as session:
            started = time.perf_counter()
            i = 0
            while time.perf_counter() - started < seconds and i < 100_000:
                body = {"records": rows[(i * batch) % 1000 : (i * batch) % 1000 + batch]}
                answer = session.post(f"{url}/v1/services/pcb-inspection/samples", json=body,
                                      headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=30)  # fmt: skip
                answer.raise_for_status()
                counts[n] += answer.json()["accepted"]
                i += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=post, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return sum(counts) / (time.perf_counter() - started)


def start(args: list[str], log: Path, health: str) -> Server:
    process = Server(args, log)
    process.wait_http(health, timeout=60)
    return process


def trigger_to_serving(tmp: Path, runs: int, threshold: int = 150) -> list[dict[str, float]]:
    root = tmp / "loop"
    root.mkdir()
    folder = copy_set("breast-cancer", root, training={"triggers": {"new_samples": threshold}})
    rows = breast_cancer()
    runs = min(runs, (len(rows) - 40) // threshold)  # the data set has 569 rows
    shutil.rmtree(folder / "learned")
    trainer.train(load_config_set(folder), rows[:40])
    ts_port, ml_port = free_port(), free_port()
    ts_url, ml_url = f"http://127.0.0.1:{ts_port}", f"http://127.0.0.1:{ml_port}"
    service = start(["training-service", "--config-root", str(root), "--port", str(ts_port)], tmp / "ts.log",
                    f"{ts_url}/v1/health")  # fmt: skip
    ml = start(
        ["serve", str(folder), "--port", str(ml_port), "--workers", "2"], tmp / "ml.log", f"{ml_url}/v2/health/live"
    )
    instance = {k: v for k, v in rows[-1].items() if k != "diagnosis"}
    out = []
    try:
        # Let the scheduler come up before the clock starts.
        deadline = time.monotonic() + 30
        while not requests.get(f"{ts_url}/v1/health", timeout=5).json()["scheduler"]["alive"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not come up")
            time.sleep(0.1)
        last_version, last_job = 1, 0
        with requests.Session() as session:
            for run in range(runs):
                time.sleep(2.5)  # every worker has had its reload check since the last change
                batch = rows[40 + run * threshold : 40 + (run + 1) * threshold]
                t0 = time.perf_counter()
                session.post(f"{ts_url}/v1/services/breast-cancer/samples", json={"records": batch}, timeout=30)
                acked = time.perf_counter()
                while time.perf_counter() - acked < 60:
                    answer = session.post(f"{ml_url}/v1/predict", json={"instances": [instance]}, timeout=5).json()
                    if answer["model"]["version"] > last_version:
                        break
                    time.sleep(0.01)
                serving = time.perf_counter()
                job = session.get(f"{ts_url}/v1/services/breast-cancer/jobs?limit=1", timeout=5).json()["jobs"][0]
                if job["id"] <= last_job or not (job["result"] or {}).get("promoted"):
                    raise RuntimeError(f"run {run}: no new promoted version: {job}")
                last_version, last_job = job["result"]["version"], job["id"]
                out.append({
                    "post_s": acked - t0, "trigger_to_serving_s": serving - acked,
                    "queued_s": job["timings"]["queued_s"], "job_s": job["timings"]["total_s"],
                    "fit_s": job["timings"]["fit_s"],
                })  # fmt: skip
    finally:
        ml.stop()
        service.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each throughput measurement")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the training service")
    parser.add_argument("--postgres", default=os.environ.get("MLRM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server to measure beside SQLite (a fresh schema, dropped after)")  # fmt: skip
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrm-bench-ingest-"))
    pg_url, why = postgres_schema(args.postgres)
    try:
        print(f"1. store only, samples/s committed, median of {args.runs} runs of {args.seconds:.0f}s")
        print(f"   {'batch':>6} {'SQLite FULL':>12} {'SQLite NORMAL':>14} {'PostgreSQL':>11}")
        for batch in BATCHES:
            full, normal = (
                statistics.median(store_rate(sqlite_url(tmp, sync), batch, args.seconds) for _ in range(args.runs))
                for sync in ("FULL", "NORMAL")
            )
            pg = f"{statistics.median(store_rate(pg_url, batch, args.seconds) for _ in range(args.runs)):>11,.0f}" if pg_url else f"{'-':>11}"  # fmt: skip
            print(f"   {batch:>6} {full:>12,.0f} {normal:>14,.0f} {pg}")
        if pg_url is None:
            print(f"   PostgreSQL skipped: {why}")

        rows = pcb_inspection(rows=1100, seed=3)
        print(f"2. HTTP JSON posts to a real training service ({args.workers} workers), samples/s acknowledged, "
              f"median of {args.runs}")  # fmt: skip
        print(f"   {'store':<11} {'batch':>6} {'1 client':>10} {'4 clients':>10}")
        for name, url in (("SQLite", ""), ("PostgreSQL", pg_url)):
            if url is None:
                print(f"   {name:<11} skipped: {why}")
                continue
            for batch, one, four in http_rates(tmp, url, rows, args):
                print(f"   {name:<11} {batch:>6} {one:>10,.0f} {four:>10,.0f}")

        print(f"3. trigger to serving (breast-cancer, logistic regression, new_samples=150, "
              f"serving.reload_interval 1.0 s), {args.runs} runs")  # fmt: skip
        runs = trigger_to_serving(tmp, args.runs)
        for key in ("post_s", "queued_s", "fit_s", "job_s", "trigger_to_serving_s"):
            values = [r[key] for r in runs]
            print(f"   {key:<22} median {statistics.median(values):7.3f}   runs: "
                  + " ".join(f"{v:.3f}" for v in values))  # fmt: skip
    finally:
        drop_schema(args.postgres, pg_url)
        shutil.rmtree(tmp, ignore_errors=True)


def http_rates(
    tmp: Path, store: str, rows: list[dict[str, Any]], args: argparse.Namespace
) -> list[tuple[int, float, float]]:
    """(batch, samples/s with 1 client, with 4) against a training service on store ('' = its SQLite default)."""
    root = tmp / f"root-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    copy_set("pcb-inspection", root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    extra = ["--store", store] if store else []
    service = start(["training-service", "--config-root", str(root), "--port", str(port), *extra,
                     "--workers", str(args.workers), "--log-level", "warning"], tmp / "ingest.log",
                    f"{url}/v1/health")  # fmt: skip
    out = []
    try:
        for batch in BATCHES:
            one = statistics.median(http_rate(url, rows, batch, args.seconds) for _ in range(args.runs))
            four = statistics.median(http_rate(url, rows, batch, args.seconds, 4) for _ in range(args.runs))
            out.append((batch, one, four))
    finally:
        service.stop()
    return out


if __name__ == "__main__":
    main()
