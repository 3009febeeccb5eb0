"""The cost of the predict routes in-process, no HTTP: one config set at /v1/predict and at
/v1/models/NAME/predict, the same route of a service that serves three sets, and Flask's route.

    python benchmarks/predict_routes.py [--set breast-cancer] [--calls 3000] [--rounds 5]

The app is called as gunicorn calls it (a WSGI environ, the body in wsgi.input), so the figures are
the app's own work: routing, decoding, the prediction, encoding, metrics. A cheap model
(breast-cancer: logistic regression) shows the routing cost best. Reports the best round's mean µs
per call (the least disturbed by other work on the machine). Against an older checkout (without /v1/models): PYTHONPATH=DIR python
benchmarks/predict_routes.py, which then runs the /v1/predict rows only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ROOT

os.environ.setdefault("OMP_NUM_THREADS", "1")

NEIGHBOURS = ("air-quality", "machine-anomaly")


def _instance(name: str) -> dict[str, Any]:
    from mlrm.tools.datasets import GENERATORS

    row = GENERATORS[name](rows=1, seed=3)[0]
    from mlrm.config import load_config_set

    target = load_config_set(ROOT / "configs" / name).target
    return {k: v for k, v in row.items() if target is None or k != target.name}


def caller(app: Callable[..., Any], path: str, body: bytes) -> Callable[[], None]:
    """One POST of body to path, as gunicorn makes it, checked to answer 200."""
    base = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "SERVER_PROTOCOL": "HTTP/1.1"}  # fmt: skip
    status: list[str] = []

    def start(code: str, headers: Any, exc_info: Any = None) -> None:
        status.append(code)

    def call() -> None:
        status.clear()
        b"".join(app({**base, "wsgi.input": io.BytesIO(body)}, start))
        if not status[0].startswith("200"):
            raise SystemExit(f"POST {path} answered {status[0]}")

    return call


def timed(call: Callable[[], None], calls: int, rounds: int) -> float:
    """The best round's mean µs per call (after untimed calls to warm up)."""
    for _ in range(200):
        call()
    means = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        means.append((time.perf_counter_ns() - started) / calls / 1000)
    return min(means)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="breast-cancer", help="the shipped config set to predict with")
    p.add_argument("--calls", type=int, default=3000, help="calls per round (default 3000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per route (default 5)")
    args = p.parse_args(argv)
    from mlrm.rest import create_app

    work = Path(tempfile.mkdtemp(prefix="mlrm-routes-"))
    try:
        folders = {}
        for name in (args.set, *(n for n in NEIGHBOURS if n != args.set)):
            folders[name] = work / name
            shutil.copytree(ROOT / "configs" / name, folders[name])
        body = json.dumps({"instances": [_instance(args.set)]}).encode()
        one = create_app(folders[args.set])
        cases = [("one set, POST /v1/predict (fast path)", one, "/v1/predict"),
                 ("one set, POST /v1/predict (Flask)", one.wsgi_app.app, "/v1/predict")]  # type: ignore[attr-defined]  # fmt: skip
        try:
            from mlrm.core.service_set import ServiceSet
        except ImportError:  # an older checkout: one set per service only
            ServiceSet = None  # type: ignore[assignment,misc]  # noqa: N806
        if ServiceSet is not None:
            three = create_app(ServiceSet(list(folders.values())))
            route = f"/v1/models/{args.set}/predict"
            cases += [(f"one set, POST {route} (fast path)", one, route),
                      (f"three sets, POST {route} (fast path)", three, route),
                      (f"three sets, POST {route} (Flask)", three.wsgi_app.app, route)]  # type: ignore[attr-defined]  # fmt: skip
        print(f"{args.set}, one row, {args.rounds} rounds of {args.calls} calls; the best round's mean")
        for label, app, path in cases:
            print(f"  {label:<62} {timed(caller(app, path, body), args.calls, args.rounds):8.1f} µs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
