"""Time from a promotion at the centre to the new version serving on a gateway that follows it.

Usage: python benchmarks/fleet.py [--rounds 10] [--interval 5] [--reload 1.0] [--asks 2000]

Starts a training service (SQLite, 127.0.0.1) over a copy of breast-cancer and
one gateway, `mlrm up` with `training.mode: remote` and
`training.follow_interval: INTERVAL`, over another copy whose ML service checks
for a new current version every RELOAD s (serving.reload_interval). Each round
waits a random part of an interval (so promotions fall anywhere between two
asks), then promotes a new version at the centre the way a training job does
(VersionStore.write: a new folder, then current.yaml), and asks the gateway's
ML service every 10 ms until an answer names the new version. Prints each
round and the median, min and max, then the cost of an unchanged ask (304)
at the centre. Expected: about INTERVAL/2 (waiting for the next ask) +
RELOAD/2 (waiting for the service's next check) + the download, which is
small. Every wait has a deadline; everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Server, free_port  # noqa: E402  (benchmarks/harness.py, beside this script)

from mlrm.storage.versions import VersionStore  # noqa: E402
from mlrm.tools.datasets import breast_cancer  # noqa: E402

NAME = "breast-cancer"


def config_set(dest: Path, reload_interval: float) -> Path:
    folder = Path(shutil.copytree(ROOT / "configs" / NAME, dest / NAME))
    file = folder / "service.yaml"
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    raw["serving"] = {**(raw.get("serving") or {}), "reload_interval": reload_interval}
    file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return folder


def promote(store: VersionStore) -> int:
    """A new current version at the centre, written as a job writes one (the first version's files again)."""
    record = store.read(1)
    return store.write({k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")}, record.files)


def version_served(url: str, body: dict[str, Any]) -> int | None:
    try:
        return int(requests.post(f"{url}/v1/predict", json=body, timeout=5).json()["model"]["version"])
    except (requests.RequestException, KeyError, ValueError, TypeError):
        return None


def measure(
    version: int, promoted: float, gateway: VersionStore, url: str, body: dict[str, Any], timeout: float
) -> tuple[float, float]:
    """Seconds from promoted until the gateway's current.yaml names version, and until its service answers with it."""
    installed = None
    while time.perf_counter() - promoted < timeout:
        if installed is None and gateway.current() == version:
            installed = time.perf_counter() - promoted
        if version_served(url, body) == version:
            serving = time.perf_counter() - promoted
            return (serving if installed is None else installed), serving
        time.sleep(0.01)
    raise SystemExit(f"version {version} not serving after {timeout:g} s")


def ask_cost(centre: str, asks: int) -> tuple[float, float]:
    """Median ms of a conditional GET of the current version answered 304, and asks/s from one client."""
    path = f"{centre}/v1/services/{NAME}/current"
    etag = requests.get(path, timeout=5).headers["ETag"]
    took = []
    started = time.perf_counter()
    for _ in range(asks):
        before = time.perf_counter()
        answer = requests.get(path, headers={"If-None-Match": etag}, timeout=5)
        took.append(time.perf_counter() - before)
        if answer.status_code != 304:
            raise SystemExit(f"expected 304, got {answer.status_code}: {answer.text[:200]}")
    return 1000 * statistics.median(took), asks / (time.perf_counter() - started)


def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"not {what} after {timeout:g} s")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--interval", type=float, default=5.0, help="training.follow_interval (default: 5, its default)"
    )
    parser.add_argument("--asks", type=int, default=2000, help="conditional GETs timed at the end (0: none)")
    parser.add_argument("--reload", type=float, default=1.0, help="serving.reload_interval (default: 1, its default)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlrm-fleet-"))
    centre_root = work / "centre"
    centre_set = config_set(centre_root, args.reload)
    gateway = VersionStore(config_set(work / "gateway" / "configs", args.reload) / "learned")
    ts_port, ml_port = free_port(), free_port()
    centre = f"http://127.0.0.1:{ts_port}"
    manifest = work / "gateway" / "services" / "fleet.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        "name: fleet-bench\ndata_dir: var\n"
        f"services:\n  {NAME}: {{config_set: configs/{NAME}, port: {ml_port}}}\n"
        f"training: {{mode: remote, url: '{centre}', follow_interval: {args.interval}}}\n"
    )
    servers = [
        Server(["training-service", "--config-root", str(centre_root), "--port", str(ts_port),
                "--store", f"sqlite:///{work / 'centre.sqlite'}"], work / "centre.log"),
        Server(["up", str(manifest)], work / "up.log"),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{ml_port}"
    body = {"instances": [{k: v for k, v in breast_cancer(rows=1)[0].items() if k != "diagnosis"}]}
    store = VersionStore(centre_set / "learned")
    times: list[float] = []
    installs: list[float] = []
    try:
        servers[0].wait_http(f"{centre}/v1/health")
        servers[1].wait_http(f"{url}/v2/health/ready", timeout=120)
        until(lambda: version_served(url, body) == 1, 60, "serving version 1")
        for n in range(args.rounds):
            time.sleep(random.uniform(0, args.interval))
            version = promote(store)
            promoted = time.perf_counter()
            installed, serving = measure(version, promoted, gateway, url, body, 4 * args.interval + 30)
            times.append(serving)
            installs.append(installed)
            print(f"round {n + 1}: version {version} installed on the gateway {installs[-1]:.2f} s and serving "
                  f"{times[-1]:.2f} s after its promotion", flush=True)  # fmt: skip
        cost = ask_cost(centre, args.asks) if args.asks else None
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"promotion at the centre to serving on the gateway (follow_interval {args.interval:g} s, "
        f"reload_interval {args.reload:g} s, {args.rounds} rounds): median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s; installed (current.yaml replaced on the gateway): "
        f"median {statistics.median(installs):.2f} s, min {min(installs):.2f} s, max {max(installs):.2f} s"
    )

    if cost is not None:
        print(
            f"an unchanged ask (If-None-Match, 304; training service with 2 sync workers, one client, a new "
            f"connection each): median {cost[0]:.2f} ms, {cost[1]:.0f} asks/s ({args.asks} asks)"
        )


if __name__ == "__main__":
    main()
