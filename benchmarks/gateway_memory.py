"""Memory of a whole gateway: `mlrm up` and every process below it.

Starts the gateway of a manifest (default services/demo.yaml) on free ports
with its data in a temporary folder, sends each ML service a few predictions
so that every worker has answered, then reads /proc for `mlrm up` and all
its descendants and prints, per process and in total:

- RSS: resident memory as `ps` shows it (pages shared between a gunicorn
  master and its forked workers are counted once per process, so the sum
  overstates what the machine spends);
- PSS: proportional set size, shared pages divided among the processes
  that share them (the sum is what the gateway really costs);
- USS: pages only this process has (what stopping it would free).

    python benchmarks/gateway_memory.py [services/demo.yaml] [--settle 5]

Linux only (/proc/<pid>/smaps_rollup).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent

from harness import descendants  # noqa: E402  (benchmarks/harness.py, beside this script)


def memory_kb(pid: int) -> dict[str, int]:
    """RSS, PSS and USS of one process in kB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            values[key] = int(parts[0])
    return {
        "rss": values.get("Rss", 0),
        "pss": values.get("Pss", 0),
        "uss": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    }


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def temporary_manifest(source: Path, folder: Path) -> Path:
    """source with every port 0 (free ones) and its data in folder."""
    raw = yaml.safe_load(source.read_text())
    raw["root"] = str((source.parent / raw.get("root", "..")).resolve())
    raw["data_dir"] = str(folder / "var")
    raw.pop("log_dir", None)
    for spec in raw["services"].values():
        spec["port"] = 0
    raw.setdefault("training", {})["port"] = 0
    path = folder / "services" / source.name
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def warm_up(state: dict[str, object]) -> None:
    """A few predictions per ML service, with the instances their config sets ask for."""
    from mlrm.config import load_config_set
    from mlrm.tools.datasets import GENERATORS

    for entry in state["services"]:  # type: ignore[attr-defined]
        if entry["kind"] != "ml" or not entry.get("config_set"):
            continue
        config = load_config_set(entry["config_set"])
        generator = GENERATORS.get(config.name)
        if generator is None:
            continue
        target = config.target.name if config.target else None
        rows = [{k: v for k, v in r.items() if k != target} for r in generator(rows=20, seed=5)]
        for _ in range(8):  # sync workers: enough calls that every worker answers some
            requests.post(entry["url"] + "/v1/predict", json={"instances": rows}, timeout=30).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", nargs="?", default=str(ROOT / "services" / "demo.yaml"))
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the warm-up before measuring")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlrm-memory-") as tmp:
        manifest = temporary_manifest(Path(args.manifest), Path(tmp))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        up = subprocess.Popen(
            [sys.executable, "-m", "mlrm", "up", str(manifest)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
        )  # fmt: skip
        assert up.stdout is not None
        started = time.monotonic()
        output = []
        for line in up.stdout:
            output.append(line)
            if "stop: Ctrl-C" in line:
                break
            if time.monotonic() - started > 180:
                break
        print("".join(output), end="")
        try:
            state = json.loads((Path(tmp) / "var" / "gateway.json").read_text())
            warm_up(state)
            time.sleep(args.settle)
            pids = [up.pid, *descendants(up.pid)]
            total = {"rss": 0, "pss": 0, "uss": 0}
            print(f"\n{'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}  process")
            for pid in pids:
                m = memory_kb(pid)
                for key in total:
                    total[key] += m[key]
                print(
                    f"{pid:>7} {m['rss'] / 1024:8.1f} {m['pss'] / 1024:8.1f} {m['uss'] / 1024:8.1f}  {command_line(pid)[-110:]}"
                )
            print(
                f"{'total':>7} {total['rss'] / 1024:8.1f} {total['pss'] / 1024:8.1f} {total['uss'] / 1024:8.1f}  "
                f"{len(pids)} processes, {len([s for s in state['services'] if s['kind'] == 'ml'])} ML services"
                f"{' + training service' if any(s['kind'] == 'training' for s in state['services']) else ''}"
            )
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
