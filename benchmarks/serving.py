"""Serving benchmark: mlrm against Seldon MLServer and a bare Flask floor, same model, same machine.

One command sets everything up and runs it:

    python benchmarks/serving.py            # full run: 3 repetitions, 10 s per load level
    python benchmarks/serving.py --quick    # smoke run: 1 repetition, 2 s per load level

What runs (each server pinned to CPU --server-cpu with taskset, 1 worker process):
  mlrm-lr, mlrm-rf     `mlrm serve` of copies of configs/pcb-inspection-lr and configs/pcb-inspection
                       (gunicorn, 1 sync worker), POST /v1/predict {"instances": [{...}]}
  mlserver-lr/-rf      Seldon MLServer (mlserver-sklearn) serving the SAME fitted estimators, exported as
                       a scikit-learn Pipeline (imputer [+ scaler] + estimator) with mlrm's learned
                       preprocessing; V2 POST /v2/models/NAME/infer, one [N,16] FP64 tensor, asking for
                       both outputs predict and predict_proba (mlrm answers labels and probabilities too).
                       Installed on first use into benchmarks/.venv-mlserver (reused afterwards).
  floor                a minimal Flask app under gunicorn with mlrm's gunicorn settings (1 sync worker):
                       POST returns a constant JSON answer. No model server on this stack can beat it.
  floor-gthread1/2     the same app under `--worker-class gthread --threads 1|2`, which keeps
                       connections alive (the sync worker closes every connection after one answer).

Load: wrk pinned to CPU --client-cpu, one thread, a Lua script POSTing a fixed body. Per server, after
a warm-up: concurrency 1 (sequential single-row latency), 8 and 32 with one-row bodies, and 64-row
bodies at concurrency 8 (rows/s). Memory: idle RSS after start-up and peak RSS under load, summed over
the server's process tree (from /proc), plus the largest single process. Every wrk run must have zero
non-2xx answers and zero socket errors, or the benchmark stops with the server's log.

Output: one table of medians over repetitions with ratios to MLServer and to the floor, and in --out
(default benchmarks/results/): serving.json (every repetition, medians, versions, machine) and
serving.png (needs the bench extra: pip install -e '.[bench]'; the table prints without it).

Needs: Linux, 2 CPUs, taskset, wrk (apt-get install wrk), internet access to PyPI on the first run.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MLSERVER_VENV = ROOT / "benchmarks" / ".venv-mlserver"
# mlserver-sklearn unpickles the estimator: its scikit-learn, numpy and joblib must be the ones that
# fitted it (this interpreter's), pinned at install time (ensure_mlserver).
# httptools: uvicorn (under MLServer) uses it when present instead of h11: MLServer's fastest HTTP parser.
# uvloop<0.22: with uvloop 0.22+ MLServer 1.7.1's inference worker processes (parallel_workers >= 1) die
# at start with "RuntimeError: There is no current event loop in thread 'MainThread'".
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "httptools", "uvloop<0.22"]
CONFIG_SETS = {"lr": "pcb-inspection-lr", "rf": "pcb-inspection"}
LEVELS = [("c1", 1, 1), ("c8", 8, 1), ("c32", 32, 1), ("b64", 8, 64)]  # (name, connections, rows per request)
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0


# --------------------------------------------------------------------------- processes


_children: list[subprocess.Popen[bytes]] = []
_children_lock = threading.Lock()


def start(args: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """A child in its own process group (so the whole tree can be stopped), output to log."""
    with open(log, "ab") as fh, _children_lock:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after STOP_TIMEOUT_S."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)
    # Leftovers of the group (a worker that outlived its master) go too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with _children_lock:
        if proc in _children:
            _children.remove(proc)


def stop_all() -> None:
    for proc in list(_children):
        stop(proc)


def _on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = READY_TIMEOUT_S) -> float:
    """Seconds until GET url answers 200; fails with the log if the server exits or never does."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before ready; log {log}:\n{tail(log)}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s; log {log}:\n{tail(log)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_checked(args: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


# --------------------------------------------------------------------------- memory


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/*/stat (parents before their children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(root: int) -> dict[str, float]:
    """MiB: RSS summed over the tree, PSS summed (shared pages split), largest single RSS,
    and the largest RSS of a process with no children (a gunicorn worker; MLServer's one process)."""
    pids = process_tree(root)
    rss = [_kib(f"/proc/{p}/status", "VmRSS:") for p in pids]
    pss = [_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids]
    leaves = [r for p, r in zip(pids, rss) if not any(_kib(f"/proc/{c}/status", "PPid:") == p for c in pids)]
    return {
        "rss_mib": sum(rss) / 1024,
        "pss_mib": sum(pss) / 1024,
        "max_rss_mib": max(rss, default=0) / 1024,
        "worker_rss_mib": max(leaves, default=0) / 1024,
    }


class PeakSampler:
    """Samples memory(root) every 0.1 s in a thread; keeps the maxima."""

    def __init__(self, root: int) -> None:
        self.root, self.peak = root, memory(root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = memory(self.root)
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------- wrk

LUA = """-- POST one fixed body; print a JSON summary line at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"non2xx":%%d,' ..
    '"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"mean_us":%%.1f,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def write_lua(path: Path, body: bytes) -> Path:
    text = body.decode()
    assert "]==]" not in text
    path.write_text(LUA % text)
    return path


def wrk(url: str, lua: Path, connections: int, duration: float, cpu: int) -> dict[str, Any]:
    """One wrk run; the parsed summary. Raises if any answer was not 2xx or any socket failed."""
    args = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--timeout", "10s", "-s", str(lua), url]  # fmt: skip
    result = run_checked(args, timeout=duration + 60)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")
    summary: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    # wrk's own line, checked as well as its Lua summary.
    non2xx_text = next((ln for ln in result.stdout.splitlines() if "Non-2xx or 3xx responses" in ln), None)
    errors = summary["connect"] + summary["read"] + summary["write"] + summary["timeout"]
    if summary["non2xx"] or non2xx_text or errors or summary["requests"] == 0:
        raise RuntimeError(
            f"wrk against {url} at c={connections}: {summary['non2xx']} non-2xx answers, {errors} socket errors "
            f"of {summary['requests']} requests:\n{result.stdout}"
        )
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    return summary


# --------------------------------------------------------------------------- the model, three ways


@dataclass
class Fixture:
    """Request bodies and expected answers for one model."""

    key: str  # lr | rf
    config_dir: Path  # the temp copy mlrm serves
    model_dir: Path  # the MLServer model folder
    mlrm_bodies: dict[int, bytes] = field(default_factory=dict)  # rows per request -> body
    v2_bodies: dict[int, bytes] = field(default_factory=dict)
    check_rows: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)  # mlrm Model.predict of check_rows


def export_pipeline(model: Any) -> Any:
    """A scikit-learn Pipeline that computes what mlrm's Model does: impute, scale, estimator."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pre = model.preprocessor
    width = len(pre.fill)
    dummy = np.zeros((2, width))
    imputer = SimpleImputer(strategy="median").fit(dummy)
    imputer.statistics_ = np.asarray(pre.fill, dtype=np.float64)
    steps: list[tuple[str, Any]] = [("impute", imputer)]
    if np.any(pre.center != 0) or np.any(pre.scale != 1):
        scaler = StandardScaler().fit(dummy)
        scaler.mean_, scaler.scale_ = np.asarray(pre.center, float), np.asarray(pre.scale, float)
        scaler.var_ = scaler.scale_**2
        steps.append(("scale", scaler))
    steps.append(("estimator", model.algorithm.estimator))
    return Pipeline(steps)


def prepare(key: str, work: Path, check_rows: int) -> Fixture:
    """Copy the config set, build bodies, export the MLServer model folder and check it in-process."""
    import joblib
    import numpy as np

    from mlrm.config import load_config_set
    from mlrm.core.model import Model
    from mlrm.storage.versions import VersionStore
    from mlrm.tools.datasets import pcb_inspection

    name = CONFIG_SETS[key]
    config_dir = work / "configs" / name
    shutil.copytree(ROOT / "configs" / name, config_dir)
    config = load_config_set(config_dir)
    store = VersionStore(config.learned_dir)
    current = store.current()
    if current is None:
        raise SystemExit(f"{ROOT / 'configs' / name} has no trained version: mlrm train it first")
    model = Model.from_record(config, store.read(current))
    target = config.target.name if config.target else None
    rows = [{k: v for k, v in r.items() if k != target} for r in pcb_inspection(max(64, check_rows), seed=11)]
    columns = model.encoder.columns
    model_dir = work / "mlserver" / f"pcb-{key}"
    model_dir.mkdir(parents=True)
    pipeline = export_pipeline(model)
    joblib.dump(pipeline, model_dir / "model.joblib")
    settings = {"name": f"pcb-{key}", "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"}}  # fmt: skip
    (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))

    def v2(batch: list[dict[str, Any]]) -> bytes:
        data = [float(r[c]) for r in batch for c in columns]
        body = {"inputs": [{"name": "input-0", "shape": [len(batch), len(columns)], "datatype": "FP64", "data": data}],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}  # fmt: skip
        return json.dumps(body).encode()

    fx = Fixture(key, config_dir, model_dir)
    for n in (1, 64):
        fx.mlrm_bodies[n] = json.dumps({"instances": rows[:n]}).encode()
        fx.v2_bodies[n] = v2(rows[:n])
    fx.check_rows = rows[:check_rows]
    fx.expected = model.predict(fx.check_rows)
    # The exported pipeline must agree with mlrm in-process before any server is compared.
    X = np.array([[float(r[c]) for c in columns] for r in fx.check_rows])
    codes = pipeline.predict(X)
    assert [model.labels[int(c)] for c in codes] == fx.expected["predictions"], "exported pipeline disagrees"
    expected_p = np.array([[p[str(label)] for label in model.labels] for p in fx.expected["probabilities"]])
    assert np.allclose(pipeline.predict_proba(X), expected_p, rtol=0, atol=1e-12), "exported probabilities disagree"
    fx.v2_bodies[-1] = v2(fx.check_rows)  # the check request
    return fx


def check_mlserver_answer(fx: Fixture, url: str) -> None:
    """MLServer's answer for the check rows must equal mlrm's (labels and probabilities)."""
    import numpy as np

    status, raw = http("POST", url, fx.v2_bodies[-1], timeout=30)
    if status != 200:
        raise RuntimeError(f"MLServer answered {status}: {raw[:2000]!r}")
    outputs = {o["name"]: o for o in json.loads(raw)["outputs"]}
    labels = list(fx.expected["probabilities"][0].keys())
    got = [labels[int(c)] for c in np.asarray(outputs["predict"]["data"]).ravel()]
    if got != fx.expected["predictions"]:
        raise RuntimeError(f"MLServer's labels differ from mlrm's for pcb-{fx.key}")
    proba = np.asarray(outputs["predict_proba"]["data"], dtype=float).reshape(outputs["predict_proba"]["shape"])
    expected = np.array([[p[k] for k in labels] for p in fx.expected["probabilities"]])
    if not np.allclose(proba, expected, rtol=0, atol=1e-9):
        raise RuntimeError(f"MLServer's probabilities differ from mlrm's for pcb-{fx.key}")


def check_mlrm_answer(fx: Fixture, url: str) -> None:
    body = json.dumps({"instances": fx.check_rows}).encode()
    status, raw = http("POST", url, body, timeout=30)
    if status != 200:
        raise RuntimeError(f"mlrm answered {status}: {raw[:2000]!r}")
    answer = json.loads(raw)
    if answer["predictions"] != fx.expected["predictions"]:
        raise RuntimeError(f"mlrm serve's labels differ from Model.predict for pcb-{fx.key}")


# --------------------------------------------------------------------------- environments


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PROMETHEUS", "MLSERVER_"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    env.update(extra or {})
    return env


def pip_versions(python: Path | str, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        f"for n in {names!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))"
    )
    result = run_checked([str(python), "-c", code], timeout=60)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def ensure_mlserver(log: Path) -> Path:
    """benchmarks/.venv-mlserver with MLServer and this interpreter's scikit-learn/numpy/joblib/scipy.

    Reused as is when its marker file lists the same requirements (a re-run installs nothing).
    """
    python = MLSERVER_VENV / "bin" / "python"
    marker = MLSERVER_VENV / "mlrm-bench-requirements.json"
    mine = pip_versions(sys.executable, ["scikit-learn", "numpy", "joblib", "scipy"])
    requirements = [*MLSERVER_PACKAGES, *(f"{n}=={v}" for n, v in mine.items() if v)]
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == requirements:
        return python
    if not python.exists():
        print(f"  creating {MLSERVER_VENV} (once; later runs reuse it)", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        run_checked([base, "-m", "venv", str(MLSERVER_VENV)], timeout=300)
    print(f"  installing {' '.join(requirements)} into {MLSERVER_VENV} (log {log})", flush=True)
    with open(log, "a") as fh:
        args = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements]
        subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, timeout=1800, check=True)
    marker.write_text(json.dumps(requirements))
    return python


# --------------------------------------------------------------------------- servers


FLOOR_APP = '''"""The floor: Flask under gunicorn answering a constant JSON body to any POST."""
from flask import Flask, Response, request

app = Flask(__name__)
ANSWER = b'{"predictions":["OK"],"probabilities":[{"OK":1.0,"error":0.0,"pseudo-error":0.0}]}'


@app.post("/v1/predict")
def predict():
    request.get_data()  # read the body, as any real handler must
    return Response(ANSWER, mimetype="application/json")


@app.get("/v2/health/ready")
def ready():
    return Response(b"{}", mimetype="application/json")
'''


@dataclass
class Server:
    name: str  # row label
    model: str | None  # lr | rf | None (floor)
    kind: str  # mlrm | mlserver | floor


def launch(server: Server, fx: dict[str, Fixture], work: Path, out: Path, mlserver_python: Path | None,
           args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str, dict[int, Path], Path]:  # fmt: skip
    """Start one server pinned to the server CPU; (process, predict URL, rows -> Lua script, log)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = out / "logs" / f"{server.name}.log"
    pin = ["taskset", "-c", str(args.server_cpu)]
    if server.kind == "mlrm":
        assert server.model
        f = fx[server.model]
        cmd = [*pin, sys.executable, "-m", "mlrm", "serve", str(f.config_dir), "--port", str(port), "--workers", "1",
               "--log-level", "warning"]  # fmt: skip
        proc = start(cmd, log, child_env(), cwd=work)
        url, bodies = f"{base}/v1/predict", f.mlrm_bodies
    elif server.kind == "mlserver":
        assert server.model and mlserver_python
        f = fx[server.model]
        folder = work / "mlserver-run" / server.name
        if not folder.exists():
            shutil.copytree(f.model_dir, folder / f.model_dir.name)
        settings = {
            "http_port": port,
            "grpc_port": free_port(),  # MLServer always starts its gRPC server; nothing calls it
            "metrics_endpoint": None,  # no Prometheus middleware on the REST path (mlrm keeps its own)
            "parallel_workers": args.mlserver_parallel_workers,
            "debug": False,
            "logging_level": "WARNING",
        }
        (folder / "settings.json").write_text(json.dumps(settings, indent=2))
        mlserver = mlserver_python.parent / "mlserver"
        proc = start([*pin, str(mlserver), "start", str(folder)], log, child_env(), cwd=folder)
        url, bodies = f"{base}/v2/models/pcb-{server.model}/infer", f.v2_bodies
    else:
        app_dir = work / "floor"
        app_dir.mkdir(exist_ok=True)
        (app_dir / "floor_app.py").write_text(FLOOR_APP)
        # mlrm/rest/server.py's options, from the command line.
        cmd = [*pin, sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--preload",
               "--timeout", "30", "--graceful-timeout", "10", "--log-level", "warning", "--limit-request-line", "8190",
               "--chdir", str(app_dir)]  # fmt: skip
        if server.name == "floor":
            cmd += ["--worker-class", "sync"]
        else:
            cmd += ["--worker-class", "gthread", "--threads", server.name.removeprefix("floor-gthread")]
        proc = start([*cmd, "floor_app:app"], log, child_env(), cwd=app_dir)
        url = f"{base}/v1/predict"
        bodies = fx["lr"].mlrm_bodies  # the same request bytes as mlrm-lr gets
    lua_dir = work / "lua"
    lua_dir.mkdir(exist_ok=True)
    scripts = {n: write_lua(lua_dir / f"{server.name}-{n}.lua", bodies[n]) for n in (1, 64)}
    return proc, url, scripts, log


def measure(server: Server, fx: dict[str, Fixture], work: Path, out: Path, mlserver_python: Path | None,
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    proc, url, scripts, log = launch(server, fx, work, out, mlserver_python, args)
    try:
        base = url.split("/v")[0]
        ready_url = (
            f"{base}/v2/models/pcb-{server.model}/ready" if server.kind == "mlserver" else f"{base}/v2/health/ready"
        )
        ready_s = wait_ready(proc, ready_url, log)
        if server.kind == "mlserver":
            check_mlserver_answer(fx[server.model or ""], url)
        elif server.kind == "mlrm":
            check_mlrm_answer(fx[server.model or ""], url)
        time.sleep(1.0)
        idle = memory(proc.pid)
        result: dict[str, Any] = {"ready_s": ready_s, "idle": idle}
        # Warm-up at the busiest level, not recorded.
        wrk(url, scripts[1], 8, args.warmup, args.client_cpu)
        with PeakSampler(proc.pid) as sampler:
            for level, connections, rows in LEVELS:
                s = wrk(url, scripts[rows], connections, args.duration, args.client_cpu)
                s["rows_per_s"] = s["rps"] * rows
                result[level] = s
                if proc.poll() is not None:
                    raise RuntimeError(f"{server.name} died during {level}:\n{tail(log)}")
        result["peak"] = sampler.peak
        return result
    except Exception:
        print(f"\n--- {server.name} log ({log}) ---\n{tail(log)}", file=sys.stderr)
        raise
    finally:
        stop(proc)


# --------------------------------------------------------------------------- report

COLUMNS = [
    ("c1 p50 ms", lambda r: r["c1"]["p50_us"] / 1000, "lat"),
    ("c1 p99 ms", lambda r: r["c1"]["p99_us"] / 1000, "lat"),
    ("c1 req/s", lambda r: r["c1"]["rps"], "thr"),
    ("c8 req/s", lambda r: r["c8"]["rps"], "thr"),
    ("c8 p50 ms", lambda r: r["c8"]["p50_us"] / 1000, "lat"),
    ("c8 p99 ms", lambda r: r["c8"]["p99_us"] / 1000, "lat"),
    ("c32 req/s", lambda r: r["c32"]["rps"], "thr"),
    ("c32 p99 ms", lambda r: r["c32"]["p99_us"] / 1000, "lat"),
    ("b64 rows/s", lambda r: r["b64"]["rows_per_s"], "thr"),
    ("idle RSS MiB", lambda r: r["idle"]["rss_mib"], "mem"),
    ("peak RSS MiB", lambda r: r["peak"]["rss_mib"], "mem"),
    ("peak PSS MiB", lambda r: r["peak"]["pss_mib"], "mem"),
    ("max proc MiB", lambda r: r["peak"]["max_rss_mib"], "mem"),
    ("worker MiB", lambda r: r["peak"]["worker_rss_mib"], "mem"),
]


def medians(reps: list[dict[str, Any]]) -> dict[str, float]:
    return {name: statistics.median(get(r) for r in reps) for name, get, _ in COLUMNS}


def fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"


def table(med: dict[str, dict[str, float]]) -> str:
    width = max(26, *(len(n) + 2 for n in med))
    head = f"{'server':<{width}}" + "".join(f"{name:>13}" for name, _, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for name, row in med.items():
        lines.append(f"{name:<{width}}" + "".join(f"{fmt(row[c]):>13}" for c, _, _ in COLUMNS))
    ratios = []
    for key in CONFIG_SETS:
        mine, theirs = med.get(f"mlrm-{key}"), med.get(f"mlserver-{key}")
        if mine and theirs:
            ratios.append((f"mlrm/MLServer {key}", {c: mine[c] / theirs[c] for c, _, _ in COLUMNS}))
        floor = med.get("floor")
        if mine and floor:
            ratios.append((f"mlrm/floor {key}", {c: mine[c] / floor[c] for c, _, _ in COLUMNS}))
    if ratios:
        lines.append("-" * len(head))
        for name, row in ratios:
            lines.append(f"{name:<{width}}" + "".join(f"{row[c]:>12.2f}x" for c, _, _ in COLUMNS))
    return "\n".join(lines)


def chart(med: dict[str, dict[str, float]], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no chart (pip install -e '.[bench]'); the table and JSON are complete.")
        return False
    names = list(med)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    panels = [
        ("requests/s (one row)", ["c1 req/s", "c8 req/s", "c32 req/s"]),
        ("latency ms (one row)", ["c1 p50 ms", "c8 p99 ms", "c32 p99 ms"]),
        ("64-row batches, c8: rows/s", ["b64 rows/s"]),
    ]
    for ax, (label, cols) in zip(axes, panels):
        width = 0.8 / len(cols)
        for i, col in enumerate(cols):
            ax.bar([x + i * width for x in range(len(names))], [med[n][col] for n in names], width, label=col)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names, rotation=35, ha="right")
        ax.set_title(label)
        ax.set_yscale("log")  # the floor and the forest differ 50-fold
        if len(cols) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def machine() -> dict[str, Any]:
    def sh(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    lscpu = dict((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in sh(["lscpu"]).splitlines()) if v)
    return {
        "cpu": lscpu.get("Model name"),
        "nproc": sh(["nproc"]),
        "mem_total_mib": _kib("/proc/meminfo", "MemTotal:") // 1024,
        "mem_available_mib": _kib("/proc/meminfo", "MemAvailable:") // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": sh(["wrk", "-v"]).splitlines()[0] if sh(["wrk", "-v"]) else None,
        "head_commit": sh(["git", "rev-parse", "--short", "HEAD"]),
        # The mlrm measured: the last commit that changed mlrm/ (benchmark commits do not change it).
        "mlrm_commit": sh(["git", "log", "-1", "--format=%h", "--", "mlrm"]),
        "mlrm_dirty": bool(sh(["git", "status", "--porcelain", "--", "mlrm"])),
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/serving.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, 2 s per level, 1 s warm-up")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per load level (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per server (default 3)")
    p.add_argument("--reps", type=int, default=3, help="repetitions; the table shows medians (default 3)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for JSON, PNG, logs")
    p.add_argument(
        "--servers", default="mlrm-lr,mlrm-rf,mlserver-lr,mlserver-rf,floor,floor-gthread1,floor-gthread2",
        help="comma-separated subset of the default list",
    )  # fmt: skip
    p.add_argument(
        "--mlserver-parallel-workers", type=int, default=0, choices=[0, 1],
        help="MLServer's parallel_workers: 0 infers in the server process, 1 in one worker process behind it "
        "(default 0, the faster on one CPU; see README)",
    )  # fmt: skip
    p.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to (default 0)")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU wrk is pinned to (default 1)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.reps = 2.0, 1.0, 1
    if args.reps < 1 or args.duration < 1:
        p.error("--reps and --duration must be at least 1")
    return args


SERVERS = {
    "mlrm-lr": Server("mlrm-lr", "lr", "mlrm"),
    "mlrm-rf": Server("mlrm-rf", "rf", "mlrm"),
    "mlserver-lr": Server("mlserver-lr", "lr", "mlserver"),
    "mlserver-rf": Server("mlserver-rf", "rf", "mlserver"),
    "floor": Server("floor", None, "floor"),
    "floor-gthread1": Server("floor-gthread1", None, "floor"),
    "floor-gthread2": Server("floor-gthread2", None, "floor"),
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SERVERS))
    if unknown:
        raise SystemExit(f"unknown servers {unknown}; choose from {', '.join(SERVERS)}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'}")
    cpus = os.sched_getaffinity(0)
    if {args.server_cpu, args.client_cpu} - cpus or args.server_cpu == args.client_cpu:
        raise SystemExit(f"--server-cpu and --client-cpu must be two different CPUs of {sorted(cpus)}")
    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(stop_all)
    out: Path = args.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mlrm-bench-"))
    try:
        return run(args, chosen, work, out)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every server", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, chosen: list[str], work: Path, out: Path) -> int:
    started = time.monotonic()
    print(f"work folder {work}; output {out}", flush=True)
    print("preparing models (copies of the committed config sets) and MLServer model folders", flush=True)
    fx = {key: prepare(key, work, check_rows=50) for key in CONFIG_SETS}
    mlserver_python = None
    if any(SERVERS[s].kind == "mlserver" for s in chosen):
        mlserver_python = ensure_mlserver(out / "logs" / "mlserver-install.log")
    info = machine()
    info["versions"] = pip_versions(sys.executable, ["scikit-learn", "numpy", "flask", "gunicorn", "orjson"])
    if mlserver_python:
        info["mlserver_versions"] = pip_versions(
            mlserver_python, ["mlserver", "mlserver-sklearn", "scikit-learn", "numpy", "uvicorn", "uvloop", "fastapi"]
        )
    print(json.dumps(info), flush=True)
    reps: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for rep in range(args.reps):
        for name in chosen:
            t = time.monotonic()
            print(f"rep {rep + 1}/{args.reps} {name} ...", end=" ", flush=True)
            r = measure(SERVERS[name], fx, work, out, mlserver_python, args)
            reps[name].append(r)
            print(
                f"c1 {r['c1']['rps']:.0f}/s p99 {r['c1']['p99_us'] / 1000:.2f} ms, c8 {r['c8']['rps']:.0f}/s, "
                f"c32 {r['c32']['rps']:.0f}/s, b64 {r['b64']['rows_per_s']:.0f} rows/s, "
                f"peak RSS {r['peak']['rss_mib']:.0f} MiB ({time.monotonic() - t:.0f}s)",
                flush=True,
            )
    med = {name: medians(rs) for name, rs in reps.items()}
    title = (
        f"mlrm {info['mlrm_commit']}{' (mlrm/ modified)' if info['mlrm_dirty'] else ''}: medians of {args.reps} "
        f"rep(s), {args.duration:.0f} s per level; servers on CPU {args.server_cpu}, wrk on CPU {args.client_cpu}; "
        f"MLServer parallel_workers={args.mlserver_parallel_workers}"
    )
    print()
    print(title)
    print(table(med))
    report = {"title": title, "args": {k: str(v) for k, v in vars(args).items()}, "machine": info,
              "medians": med, "repetitions": reps, "elapsed_s": time.monotonic() - started}  # fmt: skip
    (out / "serving.json").write_text(json.dumps(report, indent=2))
    png = out / "serving.png"
    drew = chart(med, png, title)
    print(f"\nwrote {out / 'serving.json'}" + (f" and {png}" if drew else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
