"""The footprint of a small gateway: memory, start-up and predict speed per layout, side by side, and a capped run.

Layouts of the same manifest (default services/demo.yaml), measured one after the other in one run, in
rounds (the order alternates), medians over rounds:

- before:      --baseline DIR, a checkout of another commit (e.g. today's main: `git archive`), one process
               per service (the manifest as it is), started with that checkout's mlrm;
- per-service: this checkout, the manifest as it is;
- grouped:     this checkout, every ML service with `process: ml` on one port (one gunicorn for all config
               sets; only when this mlrm's manifests know the key);
- small:       grouped, and the training service's API in one worker (`training: {workers: 1}`): what
               docs/gateway.md suggests for a 1 GB board.

For each: start-up to all-ready (from starting `mlrm up` until every service answers its ready probe),
PSS and RSS per process and in total (/proc/PID/smaps_rollup, after every worker has answered; the
dashboard, if the manifest has one, is shown on its own line and left out of the total of the services),
and per ML service predict latency (p50, p99 of sequential one-row requests) and throughput (requests/s
with --clients concurrent clients).

The capped run (--cap): the small layout (per-service if grouping is not there) started from the
commands `mlrm up` would run (mlrm.gateway.commands.plan), the ML services inside one memory cgroup of
--ml-cap MiB and the training service inside one of --training-cap MiB; then predictions on every service,
samples posted (the training service at rest held to --training-cap after its start-up, which checks the
config sets in a child that imports scikit-learn), then a training job run to the end under --job-cap (a job
imports scikit-learn and fits). Reports each cgroup's peak per phase, its OOM kills, and whether every request
was answered. How the cap is set, in order of preference: cgroup v2 memory.max, cgroup v1
memory.limit_in_bytes (+ memsw, no swap), `systemd-run --scope -p MemoryMax=`, `prlimit --as` (address space:
a much cruder cap); the report says which.

    python benchmarks/footprint.py [services/demo.yaml] [--baseline DIR] [--rounds 3] [--cap] [--json FILE]

Linux only. Every process is stopped on exit.
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
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent

from gateway_memory import command_line, memory_kb, temporary_manifest  # noqa: E402  (beside this script)
from harness import descendants, stop_group  # noqa: E402

MiB = 1024 * 1024


def groupable(checkout: Path) -> bool:
    """Whether the mlrm of a checkout knows a service's `process` key (several config sets in one gunicorn)."""
    schema = (checkout / "mlrm" / "gateway" / "manifest_schema.py").read_text()
    return '"process"' in schema


def write_layout(source: Path, folder: Path, layout: str) -> Path:
    """The manifest on free ports in folder; grouped: every ML service in one process, on one port."""
    manifest = temporary_manifest(source, folder)
    raw = yaml.safe_load(manifest.read_text())
    if layout in ("grouped", "small"):
        from harness import free_port

        port = free_port()
        for spec in raw["services"].values():
            spec["process"], spec["port"] = "ml", port
    if layout == "small":
        raw.setdefault("training", {})["workers"] = 1
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return manifest


def expand(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per ML service: a process of several config sets (its `models`) gives one for each."""
    out = []
    for e in entries:
        out += (
            [{**e, "name": m["name"], "config_set": m["config_set"]} for m in e["models"]] if e.get("models") else [e]
        )
    return out


def ready(entry: dict[str, Any]) -> bool:
    probe = "/v1/health" if entry["kind"] == "training" else "/v2/health/ready"
    if entry["kind"] not in ("training", "ml"):
        probe = "/"
    try:
        return requests.get(entry["url"] + probe, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def instances(config_set: str, rows: int = 1, seed: int = 5) -> list[dict[str, Any]]:
    from mlrm.config import load_config_set
    from mlrm.tools.datasets import GENERATORS

    config = load_config_set(config_set)
    target = config.target.name if config.target else None
    return [{k: v for k, v in r.items() if k != target} for r in GENERATORS[config.name](rows=rows, seed=seed)]


def predict_url(entry: dict[str, Any], grouped: bool) -> str:
    return f"{entry['url']}/v1/models/{entry['name']}/predict" if grouped else f"{entry['url']}/v1/predict"


def speed(url: str, body: dict[str, Any], seconds: float, clients: int) -> dict[str, float]:
    """p50/p99 of sequential requests for `seconds`, then requests/s of `clients` concurrent clients."""
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        requests.post(url, json=body, timeout=30).raise_for_status()
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    done, errors = [0], [0]
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                answer = session.post(url, json=body, timeout=30)
                done[0] += 1
                errors[0] += answer.status_code != 200

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors[0]:
        raise SystemExit(f"{url}: {errors[0]} of {done[0]} answers were not 200")
    return {"p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "rps": done[0] / seconds}  # fmt: skip


def run_layout(name: str, checkout: Path, source: Path, layout: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the gateway, time it to all-ready, measure memory and predict speed, stop it."""
    with tempfile.TemporaryDirectory(prefix=f"mlrm-footprint-{name}-") as tmp:
        manifest = write_layout(source, Path(tmp), layout)
        env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONUNBUFFERED="1")
        log = open(Path(tmp) / "up.log", "wb")
        started = time.monotonic()
        up = subprocess.Popen([sys.executable, "-m", "mlrm", "up", str(manifest)], stdout=log, stderr=subprocess.STDOUT,
                              cwd=checkout, env=env, start_new_session=True)  # fmt: skip
        try:
            state_file = Path(tmp) / "var" / "gateway.json"
            state: dict[str, Any] = {}
            while True:
                if up.poll() is not None or time.monotonic() - started > args.start_timeout:
                    raise SystemExit(
                        f"{name}: the gateway did not get ready:\n{(Path(tmp) / 'up.log').read_text()[-3000:]}"
                    )
                try:
                    state = json.loads(state_file.read_text())
                except (OSError, ValueError):
                    state = {}
                entries = expand([e for e in state.get("services", []) if e["kind"] in ("ml", "training")])
                if entries and all(e.get("url") for e in entries) and all(ready(e) for e in entries):
                    break
                time.sleep(0.1)
            startup = time.monotonic() - started
            grouped = layout in ("grouped", "small")
            ml = [e for e in entries if e["kind"] == "ml"]
            bodies = {e["name"]: instances(e["config_set"]) for e in ml}
            for e in ml:  # every worker answers a few (sync workers take turns)
                for _ in range(8):
                    requests.post(predict_url(e, grouped), json={"instances": bodies[e["name"]] * 20}, timeout=30)
            time.sleep(args.settle)
            processes = []
            for pid in [up.pid, *descendants(up.pid)]:
                try:
                    processes.append({"pid": pid, "cmd": command_line(pid), **memory_kb(pid)})
                except OSError:
                    continue
            speeds = {e["name"]: speed(predict_url(e, grouped), {"instances": bodies[e["name"]]}, args.seconds,
                                       args.clients) for e in ml}  # fmt: skip
        finally:
            stop_group(up, 60)  # type: ignore[arg-type]
            log.close()
    services = [p for p in processes if "dashboard" not in p["cmd"]]
    return {
        "startup_s": startup,
        "processes": processes,
        "pss_mb": sum(p["pss"] for p in services) / 1024,
        "rss_mb": sum(p["rss"] for p in services) / 1024,
        "dashboard_pss_mb": sum(p["pss"] for p in processes if p not in services) / 1024,
        "speed": speeds,
    }


# The model's own predict, in one process per checkout --------------------------------------------------

INPROCESS = """
import json, sys, time
from mlrm.config import load_config_set
from mlrm.core.service import Service
from mlrm.tools.datasets import GENERATORS
out = {}
for folder in sys.argv[2:]:
    config = load_config_set(folder)
    service = Service(config)
    target = config.target.name if config.target else None
    row = [{k: v for k, v in r.items() if k != target} for r in GENERATORS[config.name](rows=1, seed=5)]
    for _ in range(100):
        service.predict(row)
    runs = []
    for _ in range(int(sys.argv[1])):
        started = time.perf_counter()
        for _ in range(200):
            service.predict(row)
        runs.append((time.perf_counter() - started) / 200 * 1e6)
    out[config.name] = runs
print(json.dumps(out))
"""


def inprocess(checkouts: dict[str, Path], config_sets: list[str], rounds: int) -> dict[str, dict[str, list[float]]]:
    """µs per one-row Service.predict (validation, encoding, model) of each checkout, the checkouts taking turns."""
    found: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    for i in range(rounds):
        for name, checkout in checkouts.items() if i % 2 == 0 else reversed(checkouts.items()):
            env = dict(os.environ, PYTHONPATH=str(checkout))
            sets = [str(checkout / "configs" / n) for n in config_sets]  # each with the versions it saved
            done = subprocess.run([sys.executable, "-c", INPROCESS, "10", *sets], capture_output=True,
                                  text=True, cwd=checkout, env=env, timeout=600)  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"{name}: the in-process predict failed:\n{done.stderr[-2000:]}")
            for service, runs in json.loads(done.stdout.splitlines()[-1]).items():
                found[name].setdefault(service, []).extend(runs)
    return found


# The capped run ------------------------------------------------------------------------------------------


class Cap:
    """A memory limit for a group of processes: a cgroup where one can be made, else a per-process rlimit."""

    def __init__(self, name: str, mib: int) -> None:
        self.name, self.limit = name, mib * MiB
        self.path: Path | None = None
        self.method = "prlimit --as"
        own = Path("/proc/self/cgroup").read_text().splitlines()
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        v1 = Path("/sys/fs/cgroup/memory")
        try:
            if v2.is_file() and "memory" in v2.read_text().split():
                base = Path("/sys/fs/cgroup") / next(
                    line.split(":", 2)[2] for line in own if line.startswith("0::")
                ).lstrip("/")
                self.path = base / f"mlrm-footprint-{name}-{os.getpid()}"
                self.path.mkdir()
                (self.path / "memory.max").write_text(str(self.limit))
                (self.path / "memory.swap.max").write_text("0")
                self.method = "cgroup v2 memory.max"
            elif v1.is_dir():
                rel = next(line.split(":", 2)[2] for line in own if line.split(":")[1] == "memory").lstrip("/")
                self.path = v1 / rel / f"mlrm-footprint-{name}-{os.getpid()}"
                self.path.mkdir()
                (self.path / "memory.limit_in_bytes").write_text(str(self.limit))
                try:
                    (self.path / "memory.memsw.limit_in_bytes").write_text(str(self.limit))
                except OSError:
                    pass
                self.method = "cgroup v1 memory.limit_in_bytes"
        except (OSError, StopIteration):
            self.path = None
        if (
            self.path is None
            and shutil.which("systemd-run")
            and subprocess.run(
                ["systemd-run", "--scope", "--quiet", "-p", "MemoryMax=1G", "true"], capture_output=True
            ).returncode
            == 0
        ):
            self.method = "systemd-run MemoryMax"

    def wrap(self, argv: list[str]) -> list[str]:
        """argv started inside the cap."""
        if self.path is not None:
            join = "import os,sys; open(sys.argv[1],'w').write(str(os.getpid())); os.execv(sys.argv[2], sys.argv[2:])"
            return [sys.executable, "-c", join, str(self.path / "cgroup.procs"), *argv]
        if self.method.startswith("systemd-run"):
            return ["systemd-run", "--scope", "--quiet", "-p", f"MemoryMax={self.limit}", *argv]
        return ["prlimit", f"--as={self.limit}", *argv]

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "limit_mib": self.limit // MiB}
        if self.path is None:
            return out
        read = lambda name: (self.path / name).read_text()  # type: ignore[operator]  # noqa: E731
        if self.method.startswith("cgroup v2"):
            out["peak_mib"] = int(read("memory.peak")) / MiB
            events = dict(line.split() for line in read("memory.events").splitlines())
            out["oom_kills"] = int(events.get("oom_kill", 0))
        else:
            out["peak_mib"] = int(read("memory.max_usage_in_bytes")) / MiB
            out["failcnt"] = int(read("memory.failcnt"))
            control = dict(line.split() for line in read("memory.oom_control").splitlines())
            out["oom_kills"] = int(control.get("oom_kill", 0))
        return out

    def set(self, mib: int) -> None:
        """Another limit from now on (lower: the kernel reclaims down to it first); the peak starts afresh."""
        self.limit = mib * MiB
        if self.path is not None and self.method.startswith("cgroup v2"):
            (self.path / "memory.max").write_text(str(self.limit))
        elif self.path is not None:
            names = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]  # memsw must stay >= the other
            for name in names if mib * MiB < int((self.path / names[0]).read_text()) else names[::-1]:
                try:
                    (self.path / name).write_text(str(self.limit))
                except OSError:
                    pass
            (self.path / "memory.max_usage_in_bytes").write_text("0")

    def remove(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass


def capped_run(source: Path, layout: str, args: argparse.Namespace) -> dict[str, Any]:
    """The services of `mlrm up`'s plan, ML services under one cap and the training service under another."""
    from mlrm.gateway.commands import plan
    from mlrm.gateway.manifest import load_manifest
    from mlrm.gateway.workspace import prepare
    from mlrm.tools.datasets import GENERATORS

    # The training service starts under --job-cap: its start-up checks the config sets in a child that
    # imports scikit-learn, as a job does; at rest it is held to --training-cap.
    caps = {"ml": Cap("ml", args.ml_cap), "training": Cap("training", args.job_cap)}
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"layout": layout}
    with tempfile.TemporaryDirectory(prefix="mlrm-footprint-capped-") as tmp:
        manifest = prepare(load_manifest(write_layout(source, Path(tmp), layout)))
        steps = plan(manifest)
        try:
            launches = [launch for launch in steps.launches if launch.kind in caps]
            for launch in launches:
                log = open(Path(tmp) / f"{launch.name}.log", "wb")
                procs.append(subprocess.Popen(caps[launch.kind].wrap(list(launch.argv)), cwd=launch.cwd, env=launch.env,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
            entries = [{"name": name, "kind": launch.kind, "url": launch.url, "config_set": str(config_set)}
                       for launch in launches
                       for name, config_set in (getattr(launch, "models", ()) or [(launch.name, launch.config_set)])]  # fmt: skip
            deadline = time.monotonic() + args.start_timeout
            while not all(ready(e) for e in entries):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    logs = "\n".join(p.read_text()[-1500:] for p in Path(tmp).glob("*.log"))
                    raise SystemExit(f"capped run: not ready:\n{logs}")
                time.sleep(0.2)
            time.sleep(args.settle)
            result["start"] = {"training": caps["training"].figures()}
            caps["training"].set(args.training_cap)
            grouped = layout in ("grouped", "small")
            answered = failed = 0
            for e in (e for e in entries if e["kind"] == "ml"):
                body = {"instances": instances(e["config_set"], rows=20)}
                for _ in range(50):
                    ok = requests.post(predict_url(e, grouped), json=body, timeout=30).status_code == 200
                    answered, failed = answered + ok, failed + (not ok)
            training = next(e for e in entries if e["kind"] == "training")
            name = args.train_set
            records = GENERATORS[name](rows=args.samples, seed=9)  # below its trigger: no job at rest
            url = f"{training['url']}/v1/services/{name}"
            posted = requests.post(f"{url}/samples", json={"records": records}, timeout=60).status_code
            time.sleep(args.settle)
            result["serving_and_ingest"] = {
                **{kind: cap.figures() for kind, cap in caps.items()},
                "predictions_answered": answered, "predictions_failed": failed, "samples_status": posted,
                "still_running": all(p.poll() is None for p in procs),
            }  # fmt: skip
            # A job imports scikit-learn and fits, in a process of its own: it gets --job-cap for its turn.
            caps["training"].set(args.job_cap)
            job = requests.post(f"{url}/train", json={}, timeout=60).json()
            job_id = job.get("id") or job.get("job", {}).get("id")
            status: dict[str, Any] = {}
            deadline = time.monotonic() + args.job_timeout
            while time.monotonic() < deadline:
                status = requests.get(f"{training['url']}/v1/jobs/{job_id}", timeout=10).json()
                if status.get("state") in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
            result["training_job"] = {
                "state": status.get("state"), "error": status.get("error"),
                "still_running": all(p.poll() is None for p in procs), "training": caps["training"].figures(),
            }  # fmt: skip
        finally:
            for p in procs:
                stop_group(p, 30)  # type: ignore[arg-type]
            for cap in caps.values():
                cap.remove()
    return result


# Report ---------------------------------------------------------------------------------------------------


def role(cmd: str) -> str:
    if " up " in cmd:
        return "mlrm up"
    if "training-service" in cmd:
        return "training service"
    if "dashboard" in cmd:
        return "dashboard"
    return "ML services"


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    med = statistics.median
    print("\nmedians over rounds (busy machines make single figures noisy)\n")
    print(f"{'layout':<12} {'start s':>8} {'PSS MB':>8} {'RSS MB':>8} {'procs':>6}  PSS by part (MB)")
    for name, runs in results.items():
        parts: dict[str, list[float]] = {}
        for run in runs:
            totals: dict[str, float] = {}
            for p in run["processes"]:
                totals[role(p["cmd"])] = totals.get(role(p["cmd"]), 0) + p["pss"] / 1024
            for k, v in totals.items():
                parts.setdefault(k, []).append(v)
        by_part = ", ".join(f"{k} {med(v):.0f}" for k, v in sorted(parts.items()))
        print(f"{name:<12} {med(r['startup_s'] for r in runs):8.1f} {med(r['pss_mb'] for r in runs):8.0f} "
              f"{med(r['rss_mb'] for r in runs):8.0f} {len(runs[0]['processes']):>6}  {by_part}")  # fmt: skip
    print(f"\n{'layout':<12} {'service':<16} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, runs in results.items():
        for service in runs[0]["speed"]:
            s = [r["speed"][service] for r in runs]
            print(f"{name:<12} {service:<16} {med(x['p50_ms'] for x in s):8.2f} {med(x['p99_ms'] for x in s):8.2f} "
                  f"{med(x['rps'] for x in s):8.1f}")  # fmt: skip
    print("\nper process (last round):")
    for name, runs in results.items():
        for p in runs[-1]["processes"]:
            print(f"  {name:<12} {p['pid']:>7} RSS {p['rss'] / 1024:6.1f} PSS {p['pss'] / 1024:6.1f}  {p['cmd'][-90:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", nargs="?", default=str(ROOT / "services" / "demo.yaml"))
    p.add_argument("--baseline", metavar="DIR", help="a checkout to measure as 'before' (one process per service)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of each latency and throughput measurement")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--start-timeout", type=float, default=240.0)
    p.add_argument("--cap", action="store_true", help="also the capped run")
    p.add_argument("--ml-cap", type=int, default=256, metavar="MIB")
    p.add_argument("--training-cap", type=int, default=128, metavar="MIB")
    p.add_argument("--job-cap", type=int, default=256, metavar="MIB", help="the training service's cap during a job")
    p.add_argument("--samples", type=int, default=150, help="samples posted at rest (fewer than its trigger asks)")
    p.add_argument("--train-set", default="air-quality", help="the config set the capped run trains once")
    p.add_argument("--job-timeout", type=float, default=300.0)
    p.add_argument("--json", metavar="FILE", help="write every figure here")
    p.add_argument("--inprocess", type=int, default=2, metavar="N",
                   help="rounds of the in-process predict timing per checkout (0: none)")  # fmt: skip
    p.add_argument("--inprocess-sets", nargs="*", default=["pcb-inspection", "breast-cancer", "air-quality"])
    p.add_argument("--only", nargs="*", help="layouts to run (before, per-service, grouped)")
    args = p.parse_args(argv)
    source = Path(args.manifest).resolve()
    layouts: list[tuple[str, Path, str]] = []
    if args.baseline:  # with its own manifest of the same name: keys added since would not load there
        layouts.append(("before", Path(args.baseline).resolve(), "per-service"))
    layouts.append(("per-service", ROOT, "per-service"))
    if groupable(ROOT):
        layouts += [("grouped", ROOT, "grouped"), ("small", ROOT, "small")]
    if args.only:
        layouts = [x for x in layouts if x[0] in args.only]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in layouts}
    for i in range(args.rounds):
        for name, checkout, layout in layouts if i % 2 == 0 else layouts[::-1]:
            print(f"round {i + 1}: {name} ...", flush=True)
            own = checkout / "services" / source.name
            manifest = own if name == "before" and own.is_file() else source
            results[name].append(run_layout(name, checkout, manifest, layout, args))
    report(results)
    out: dict[str, Any] = {"layouts": results}
    if args.inprocess:
        checkouts = {"before": Path(args.baseline).resolve()} if args.baseline else {}
        checkouts["now"] = ROOT
        timings = inprocess(checkouts, args.inprocess_sets, args.inprocess)
        out["inprocess_us"] = timings
        print(f"\nService.predict, one row, µs (best / median of {args.inprocess} x 10 x 200 calls, checkouts in turn)")
        for name, services in timings.items():
            print(
                f"  {name:<8} "
                + "  ".join(f"{s} {min(r):.1f} / {statistics.median(r):.1f}" for s, r in services.items())
            )
    if args.cap:
        layout = "small" if groupable(ROOT) else "per-service"
        capped = capped_run(source, layout, args)
        out["capped"] = capped
        print(f"\ncapped run ({layout} layout): {json.dumps(capped, indent=1)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
