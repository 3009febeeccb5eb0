"""`mlrm bench CONFIG_SET [--target URL ...]`: the testing framework as a command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from mlrm.errors import DataError

HELP = (
    "Benchmark a config set: train it on data from a virtual asset (time, CPU, memory, energy), then "
    "measure predictions on a local mlrm serve or on each --target side by side (round trip split into "
    "compute and ingest + transport, throughput by concurrency, RTT, server CPU and memory, energy)."
)
EXAMPLES = """mlrm bench configs/pcb-inspection                     # train here, serve here, measure
  mlrm bench configs/pcb-inspection --quick --json out.json --html out.html
  mlrm bench configs/air-quality --no-train \\
      --target http://gateway:8003 --target http://central:8003     # edge against cloud, one run
  mlrm bench configs/pcb-inspection --data pcb.csv --batch 64 --concurrency 1 8 32
  mlrm bench configs/machine-anomaly --mqtt-broker mqtt://127.0.0.1:1883   # REST and MQTT

Energy needs codecarbon (pip install 'mlrm[bench]'); without it the report says
"not measured". How every figure is measured: docs/bench.md."""


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def cmd_bench(args: argparse.Namespace) -> int:
    from mlrm.tools.bench import report
    from mlrm.tools.bench.run import Settings, run
    from mlrm.training.progress import ProgressPrinter

    folder = Path(args.config_set)
    if not (folder / "service.yaml").is_file():
        raise DataError(f"{folder}: no service.yaml there; give a config set folder, e.g. configs/pcb-inspection")
    if args.data is not None and not Path(args.data).is_file():
        raise DataError(f"--data {args.data}: no such file; give a CSV with the inputs and the target")
    quick = Settings.quick_defaults() if args.quick else {}
    chosen = {
        k: v
        for k, v in vars(args).items()
        if k in ("rows", "requests", "per_thread", "concurrency", "pings") and v is not None
    }
    settings = Settings(
        config_set=folder, targets=args.target or [], local=args.local, data=Path(args.data) if args.data else None,
        seed=args.seed, batch=args.batch, workers=args.workers, mqtt_broker=args.mqtt_broker,
        train=not args.no_train, quick=args.quick, keep=args.keep, **{**quick, **chosen},
    )  # fmt: skip
    with ProgressPrinter(sys.stderr) as progress:
        result = run(settings, progress)
    sys.stdout.write(report.table(result))
    if args.json:
        report.write_json(result, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.html:
        report.write_html(result, Path(args.html))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `mlrm bench` to the command line."""
    s = add("bench", HELP, EXAMPLES, cmd_bench)
    s.add_argument("config_set", metavar="CONFIG_SET", help="config set folder (never written: bench works on a copy)")
    s.add_argument("--target", action="append", metavar="URL",
                   help="base URL of an ML service serving this config set (mlrm serve, or one service of mlrm up); "
                   "repeat to compare several side by side. Without: a local mlrm serve of the copy")  # fmt: skip
    s.add_argument("--local", action="store_true", help="with --target: measure a local mlrm serve beside them too")
    s.add_argument("--data", metavar="FILE.csv", help="train and predict with this CSV instead of generated records")
    s.add_argument("--no-train", action="store_true",
                   help="skip training; predict with the version the config set (or the target) already has")  # fmt: skip
    s.add_argument("--quick", action="store_true",
                   help="a smoke run in seconds: 300 rows, 20 sequential predicts, concurrency 1 and 4 with 10 "
                   "predicts per thread, 10 pings, neural networks 2 epochs")  # fmt: skip
    s.add_argument(
        "--rows", type=positive, help="records to generate (default 2000; a sequence set: about this many windows)"
    )
    s.add_argument("--seed", type=int, default=7, help="seed of the virtual asset (default 7)")
    s.add_argument("--requests", type=positive, help="sequential predicts for the latency split (default 200)")
    s.add_argument("--concurrency", type=positive, nargs="+", metavar="N", help="concurrency levels (default 1 4 16)")
    s.add_argument("--per-thread", type=positive, dest="per_thread",
                   help="predicts each thread sends at a concurrency level (default 50)")  # fmt: skip
    s.add_argument("--pings", type=positive, help="GET /v2/health/live round trips per target (default 50)")
    s.add_argument("--batch", type=positive, default=1, help="instances per predict request (default 1)")
    s.add_argument("--workers", type=positive, default=1, help="gunicorn workers of the local mlrm serve (default 1)")
    s.add_argument("--mqtt-broker", metavar="URL",
                   help="also measure predictions over MQTT through this broker (local serve only), "
                   "e.g. mqtt://127.0.0.1:1883")  # fmt: skip
    s.add_argument("--json", metavar="FILE", help="write the whole report as JSON")
    s.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")
    s.add_argument("--keep", action="store_true", help="keep the working copy and the servers' logs (path on stderr)")
