"""What drift monitoring costs on the predict path: the PCB logistic regression, monitoring on and off.

    python benchmarks/drift_overhead.py [--rounds 41] [--calls 300] [--clock cpu|wall] [--warm 2]
                                        [--out benchmarks/results/drift_overhead.json]

configs/pcb-inspection-lr is copied and trained on generated PCB rows (mlrm.tools.datasets.pcb_inspection,
so its version has a reference profile), then served by two apps from mlrm.rest.app.create_app over the
same version: one with serving.drift.enabled true (the default), one with false. With
PROMETHEUS_MULTIPROC_DIR set, as under `mlrm serve`, so the monitor's thread writes its counts file
every second while it runs.

Measured, on 1 row and on 64 rows per request (other generated rows than the training ones):
  fast path   POST /v1/predict through the app's WSGI callable (mlrm.rest.fastroute: decode, validate,
              encode, predict, encode the answer, metrics), no socket: the path gunicorn calls
  core        Service.predict on the decoded instances (validation, encoding, model, the observer)
Each round times --calls calls of each variant, on and off alternating (which one goes first alternates
too), so a busy machine slows both alike; the figures are the medians over rounds of µs per call, the
overhead is (on - off) / off of those medians, and beside it the median of each round's own (on - off) / off
(on and off timed back to back, so it moves less with the machine's load). --clock cpu (the default) times the process's CPU time
(time.process_time_ns: every thread, the monitor's included, but not the time spent waiting for a core on
a shared machine); --clock wall times elapsed time. OMP_NUM_THREADS is 1 unless set, as under `mlrm serve`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import yaml  # noqa: E402

from mlrm.config import load_config_set  # noqa: E402
from mlrm.core.service import Service  # noqa: E402
from mlrm.tools.datasets import pcb_inspection  # noqa: E402
from mlrm.training import trainer  # noqa: E402

SET = "pcb-inspection-lr"


def prepare(folder: Path) -> tuple[Path, Path]:
    """Two config sets sharing one trained version: drift monitoring on, and off."""
    on = folder / "on"
    shutil.copytree(ROOT / "configs" / SET, on, ignore=shutil.ignore_patterns("learned"))
    trainer.train(load_config_set(on), pcb_inspection(3000, seed=1))
    off = folder / "off"
    shutil.copytree(on, off)
    raw = yaml.safe_load((off / "service.yaml").read_text())
    raw.setdefault("serving", {})["drift"] = {"enabled": False}
    (off / "service.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return on, off


def wsgi_call(app: Any, body: bytes) -> Callable[[], None]:
    """One POST /v1/predict through the app's WSGI callable, as gunicorn's worker makes it."""

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"predict answered {status}")

    def call() -> None:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/predict", "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        }  # fmt: skip
        for _ in app(environ, start_response):
            pass

    return call


CLOCKS: dict[str, Callable[[], int]] = {"cpu": time.process_time_ns, "wall": time.perf_counter_ns}


def core_call(service: Any, instances: list[dict[str, Any]]) -> Callable[[], None]:
    """One Service.predict, the core every transport calls."""

    def call() -> None:
        service.predict(instances)

    return call


def timed(call: Callable[[], None], calls: int, clock: Callable[[], int]) -> float:
    """µs per call over calls calls."""
    started = clock()
    for _ in range(calls):
        call()
    return (clock() - started) / calls / 1000


def compare(
    on: Callable[[], None], off: Callable[[], None], rounds: int, calls: int, clock: Callable[[], int], warm: float
) -> dict[str, Any]:
    # Warm up both for `warm` s: the monitor sets how much of the traffic it samples from the rate it sees
    # (serving.drift.max_rate), so what is timed is a service in its steady state, not its first second.
    until = time.monotonic() + warm
    while time.monotonic() < until:
        on()
        off()
    times: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(rounds):
        order = (("on", on), ("off", off)) if r % 2 == 0 else (("off", off), ("on", on))
        for name, call in order:
            times[name].append(timed(call, calls, clock))
    median_on, median_off = statistics.median(times["on"]), statistics.median(times["off"])
    paired = statistics.median(100 * (a - b) / b for a, b in zip(times["on"], times["off"], strict=True))
    return {
        "on_us": round(median_on, 2),
        "off_us": round(median_off, 2),
        "overhead_pct": round(100 * (median_on - median_off) / median_off, 2),
        "paired_overhead_pct": round(paired, 2),
        "rounds_on_us": [round(t, 2) for t in times["on"]],
        "rounds_off_us": [round(t, 2) for t in times["off"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=300, help="calls per variant per round")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--warm", type=float, default=2.0, help="seconds of calls before each measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "drift_overhead.json")
    args = parser.parse_args()
    metrics_dir = tempfile.mkdtemp(prefix="mlrm-bench-drift-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before prometheus_client is imported (by the app)
    from mlrm.rest.app import create_app

    work = Path(tempfile.mkdtemp(prefix="mlrm-bench-drift-sets-"))
    try:
        on_set, off_set = prepare(work)
        services = {"on": Service(load_config_set(on_set)), "off": Service(load_config_set(off_set))}
        apps = {name: create_app(service.config, service=service) for name, service in services.items()}
        assert services["on"].drift is not None and services["off"].drift is None
        rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_inspection(64, seed=99)]
        results: dict[str, Any] = {}
        for size in (1, 64):
            instances = rows[:size]
            body = orjson.dumps({"instances": instances})
            for path, make in (
                ("fast path", lambda name, b=body: wsgi_call(apps[name], b)),
                ("core", lambda name, i=instances: core_call(services[name], i)),
            ):
                key = f"{path}, {size} row{'s' if size > 1 else ''}"
                results[key] = compare(make("on"), make("off"), args.rounds, args.calls, CLOCKS[args.clock], args.warm)
                r = results[key]
                print(f"{key:22s} on {r['on_us']:8.1f} µs   off {r['off_us']:8.1f} µs   overhead {r['overhead_pct']:+6.2f} % "
                      f"(median of rounds' own: {r['paired_overhead_pct']:+6.2f} %)",
                      flush=True)  # fmt: skip
        report = services["on"].drift_report()
        print(f"monitor counted {report['window']['rows']} rows; overall PSI {report['overall']['psi']} "
              f"({report['overall']['level']})")  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "config_set": SET, "rounds": args.rounds, "calls": args.calls, "clock": args.clock, "results": results,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        }, indent=2))  # fmt: skip
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
