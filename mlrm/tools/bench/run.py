"""One `mlrm bench` run: data, training, then prediction cycles on each target; a result dict.

The user's config set is never written: everything happens on a copy in a
temporary folder (removed afterwards unless --keep), which is also what a
local `mlrm serve` serves when no --target is given.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from mlrm import __version__
from mlrm.config import ServiceConfig, load_config_set
from mlrm.credentials import client_token
from mlrm.errors import DataError
from mlrm.tools.bench import asset, energy, procstat
from mlrm.tools.bench.processes import LocalServer, train
from mlrm.tools.bench.rest import Target, encode_bodies

SCHEMA = 1
QUICK_EPOCHS = 2  # --quick: neural networks train this many epochs at most (recorded in the report)


@dataclass
class Settings:
    config_set: Path
    targets: list[str] = field(default_factory=list)
    local: bool = False  # also measure a local mlrm serve beside the targets
    data: Path | None = None
    rows: int = 2000
    seed: int = 7
    requests: int = 200  # sequential predicts for the latency split
    per_thread: int = 50  # predicts per thread at each concurrency level
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16])
    batch: int = 1
    pings: int = 50
    workers: int = 1
    mqtt_broker: str | None = None
    train: bool = True
    quick: bool = False
    keep: bool = False
    interval: float = 0.1

    @classmethod
    def quick_defaults(cls) -> dict[str, Any]:
        return {"rows": 300, "requests": 20, "per_thread": 10, "concurrency": [1, 4], "pings": 10}


def machine() -> dict[str, Any]:
    """What the figures were measured on (the machine mlrm bench runs on)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        mem = 0
    return {
        "host": platform.node(), "system": platform.platform(), "python": platform.python_version(),
        "cpus": os.cpu_count(), "cpu_model": model, "memory_mib": round(mem / 1024) if mem else None,
    }  # fmt: skip


def working_copy(settings: Settings, work: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the config set to train and serve; --quick caps neural networks' epochs in it."""
    copy = work / settings.config_set.resolve().name
    shutil.copytree(settings.config_set, copy, ignore=shutil.ignore_patterns("*.sqlite*", "audit.jsonl", ".lock"))
    overrides: dict[str, Any] = {}
    if settings.quick:
        path = copy / "service.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        hyper = (raw.get("algorithm") or {}).get("hyperparameters") or {}
        if isinstance(hyper.get("epochs"), int) and hyper["epochs"] > QUICK_EPOCHS:
            overrides["algorithm.hyperparameters.epochs"] = {"from": hyper["epochs"], "to": QUICK_EPOCHS}
            hyper["epochs"] = QUICK_EPOCHS
            path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return copy, overrides


def _records(settings: Settings, config: ServiceConfig, work: Path) -> tuple[list[dict[str, Any]], Path, str]:
    if settings.data is not None:
        return asset.read_csv(config, settings.data), settings.data, str(settings.data)
    records = asset.generate(config, settings.rows, settings.seed)
    path = work / "asset.csv"
    asset.to_csv(records, path)
    return records, path, f"generated from the inputs (seed {settings.seed})"


def measure_target(
    target: Target, bodies: list[bytes], settings: Settings, pid: int | None, progress: Any
) -> dict[str, Any]:
    """RTT, the latency split and throughput of one target, with the server's CPU and memory where visible."""
    index = target.check()
    label = target.url
    progress("rtt", None, f"{label}: {settings.pings} x GET /v2/health/live")
    rtt = target.rtt(settings.pings)
    sampler = procstat.Sampler(pid, settings.interval) if pid is not None and procstat.available() else None
    meter = energy.Meter()
    levels = []
    with meter:
        if sampler is not None:
            sampler.__enter__()
        try:
            progress("predict", None, f"{label}: {len(bodies)} sequential predicts")
            latency = target.latency(bodies, lambda text: progress("predict", None, f"{label}: {text}"))
            for c in settings.concurrency:
                progress("throughput", None, f"{label}: concurrency {c}, {c * settings.per_thread} predicts")
                levels.append(target.throughput(bodies, c, settings.per_thread))
        finally:
            if sampler is not None:
                sampler.__exit__(None, None, None)
    resources = sampler.summary() if sampler is not None else None
    return {
        "url": target.url,
        "predict": target.predict_path,
        "version": index.get("version"),
        "mlrm": index.get("mlrm"),
        "rtt_ms": rtt,
        "latency": latency,
        "throughput": levels,
        "server": resources,
        "server_note": None
        if resources
        else "not measured: it does not listen on this machine's loopback (run mlrm bench on its host for these)",
        "energy": meter.result,
    }


def run(settings: Settings, progress: Any) -> dict[str, Any]:
    """The whole benchmark; the report as a dict (see docs/bench.md for its keys)."""
    config = load_config_set(settings.config_set)
    if not settings.targets and not settings.train and not (config.learned_dir / "current.yaml").exists():
        raise DataError(f"{settings.config_set} has no trained version and --no-train was given: drop --no-train, "
                        "or give --target URL of a service that serves it")  # fmt: skip
    token = client_token()
    targets = [Target(url, config.name, token) for url in settings.targets]
    for target in targets:  # before training: a wrong or unreachable URL fails in a second, not after minutes
        target.check()
    started = datetime.now(timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="mlrm-bench-"))
    try:
        copy, overrides = working_copy(settings, work)
        records, data_path, source = _records(settings, config, work)
        training = None
        if settings.train:
            progress(
                "training", None, f"'{config.name}' ({config.algorithm}) on {len(records)} records, in a child process"
            )
            training = train(copy, data_path, work, progress, settings.interval)
            progress("training", 1.0, f"{training['train_s']:.2f} s for {training['rows']} {training['unit']}")
        instances = asset.instances(config, records, max(settings.requests, settings.per_thread) * settings.batch)
        bodies = encode_bodies(instances, settings.batch, max(settings.requests, settings.per_thread))
        results = []
        if settings.local or not settings.targets:
            server = LocalServer(copy, work, settings.workers, settings.mqtt_broker)
            progress("serve", None, f"starting mlrm serve of the copy at {server.url}")
            with server:
                target = Target(server.url, config.name)
                result = {
                    "name": "local",
                    "local": True,
                    **measure_target(target, bodies, settings, server.pid, progress),
                }
                results.append(result)
                broker = settings.mqtt_broker or (config.section("mqtt") or {}).get("broker")
                if broker:
                    from mlrm.tools.bench.mqtt import measure_mqtt

                    progress("mqtt", None, f"{settings.requests} predicts over {broker}")
                    result["mqtt"] = measure_mqtt(config, broker, instances, settings.requests)
        for target in targets:
            pid = procstat.listening_pid(target.port) if target.host in ("127.0.0.1", "localhost", "::1") else None
            results.append(
                {"name": target.url, "local": False, **measure_target(target, bodies, settings, pid, progress)}
            )
        progress("done", 1.0, f"{len(results)} target(s) measured")
        return {
            "schema": SCHEMA,
            "mlrm": __version__,
            "started_at": started.isoformat(timespec="seconds"),
            "config_set": {
                "name": config.name,
                "path": str(settings.config_set),
                "algorithm": config.algorithm,
                "task": config.task,
                "sequence": config.sequence is not None,
            },  # fmt: skip
            "machine": machine(),
            "settings": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
                "data_source": source,
                "overrides": overrides,
                "python": sys.executable,
            },  # fmt: skip
            "energy": {"measured": energy.available(), "note": None if energy.available() else energy.NOT_MEASURED},
            "training": training,
            "targets": results,
        }
    finally:
        if settings.keep:
            progress("done", 1.0, f"kept the working copy and logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
