"""Slow clients against an ML service: which server configuration keeps answering everyone else?

    python benchmarks/slow_clients.py              # every candidate, N = 200 slow connections
    python benchmarks/slow_clients.py --quick      # shorter windows (a smoke run, ~1 min)

Candidates (one worker process each, pinned to CPU --server-cpu; the model is a copy of
configs/pcb-inspection-lr):
  sync           gunicorn's sync worker (mlrm's worker before issue 13): one connection at a time
  gthread4       gunicorn's gthread worker, 4 threads
  gevent         gunicorn's gevent worker (one greenlet per connection)
  nginx+sync     Debian's nginx in front of the sync worker, buffering whole requests (if nginx is
                 installed: apt-get install nginx-light); nginx pinned to the same CPU

Per candidate: throughput with no slow clients (wrk, pinned to --client-cpu, one-row predict bodies,
c=1 and c=8), then with N slow connections open, a well-behaved client probes GET /v2/health/ready
and POST /v1/predict alternately, each on a new connection, every 50 ms for --window seconds.
Slow connections are of one kind per row:
  header   sends half a request header, then nothing
  trickle  sends a whole header with Content-Length 10000, then one body byte per second
A slow connection the server closes is opened again, so N stay open. A probe is answered when a
2xx arrives within --probe-timeout (1 s); its latency counts only then. The table prints, per row,
median and p99 latency (ms) of answered probes, the answered share, and the share under 100 ms.

Needs: Linux, 2 CPUs, taskset, wrk (apt-get install wrk); nginx optional.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import serving  # noqa: E402 (its process, wrk and readiness helpers; path set just above)

CONFIG_SET = "pcb-inspection-lr"
WORKER_CLASSES = {"sync": ("sync", 1), "gthread4": ("gthread", 4), "gevent": ("gevent", 1)}
ONE_ROW = (
    b'{"instances": [{"volume_pct": 96.1, "area_pct": 98.3, "height_um": 118, "offset_x_um": 4.2,'
    b' "offset_y_um": -3.0, "bridge_gap_um": 151, "shape_score": 0.91, "coplanarity_um": 7.5,'
    b' "smear_pct": 1.9, "paste_temp_c": 23.1, "humidity_pct": 44, "squeegee_pressure_n": 61,'
    b' "print_speed_mm_s": 50, "stencil_prints": 1200}]}'
)
NGINX_CONF = """daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  client_header_timeout 10s; client_body_timeout 10s; keepalive_timeout 5s;
  upstream mlrm {{ server 127.0.0.1:{upstream}; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mlrm;
      proxy_request_buffering on;
      proxy_buffering on;
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def serve_one(worker: str, threads: int, config_dir: str, port: int) -> None:
    """The service under test, in this process (run as a child of the benchmark)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlrm-metrics-")
    from mlrm.config import load_config_set
    from mlrm.rest import create_app
    from mlrm.rest.server import serve

    config = load_config_set(config_dir)
    serve(lambda: create_app(config), host="127.0.0.1", port=port, workers=1, name=config.name,
          log_level="warning", worker_class=worker, threads=threads)  # fmt: skip


# --------------------------------------------------------------------------- slow connections


class SlowClients:
    """N connections that each send half a request (header) or trickle a body, reopened when closed."""

    def __init__(self, port: int, count: int, kind: str) -> None:
        self.port, self.count, self.kind = port, count, kind
        self.socks: list[socket.socket] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket | None:
        s = socket.socket()
        s.settimeout(2.0)
        try:
            s.connect(("127.0.0.1", self.port))
            if self.kind == "header":
                s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: plant\r\nContent-Type: appli")
            else:
                s.sendall(
                    b"POST /v1/predict HTTP/1.1\r\nHost: plant\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 10000\r\n\r\n{"
                )
            s.setblocking(False)
            return s
        except OSError:
            s.close()
            return None

    def __enter__(self) -> SlowClients:
        for _ in range(self.count):
            s = self._open()
            if s is not None:
                self.socks.append(s)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            alive: list[socket.socket] = []
            for s in self.socks:
                try:
                    if s.recv(4096, socket.MSG_PEEK) == b"":
                        raise ConnectionResetError  # the server closed it (or answered)
                except BlockingIOError:
                    pass  # open, nothing said: as expected
                except OSError:
                    s.close()
                    self.reopened += 1
                    s2 = self._open()
                    if s2 is not None:
                        alive.append(s2)
                    continue
                else:
                    s.close()
                    self.reopened += 1
                    s2 = self._open()
                    if s2 is not None:
                        alive.append(s2)
                    continue
                if self.kind == "trickle":
                    try:
                        s.send(b" ")
                    except OSError:
                        pass
                alive.append(s)
            self.socks = alive

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for s in self.socks:
            s.close()


# --------------------------------------------------------------------------- probes


@dataclass
class Probes:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"health": [], "predict": []})
    sent: dict[str, int] = field(default_factory=lambda: {"health": 0, "predict": 0})


def probe(port: int, what: str, timeout: float) -> float | None:
    """Milliseconds to a 2xx answer on a new connection; None when none came within timeout."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if what == "health":
            conn.request("GET", "/v2/health/ready")
        else:
            conn.request("POST", "/v1/predict", body=ONE_ROW, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if 200 <= response.status < 300:
            return (time.perf_counter() - started) * 1000
        return None
    except OSError:
        return None
    finally:
        conn.close()


def run_probes(port: int, window: float, timeout: float) -> Probes:
    out = Probes()
    deadline = time.monotonic() + window
    turn = 0
    while time.monotonic() < deadline:
        what = ("health", "predict")[turn % 2]
        turn += 1
        out.sent[what] += 1
        ms = probe(port, what, timeout)
        if ms is not None:
            out.latencies[what].append(ms)
        time.sleep(0.05)  # pacing of the well-behaved client, not a wait for the server
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- candidates


def start_candidate(name: str, config_dir: Path, work: Path, cpu: int) -> tuple[list[object], int]:
    """Start a candidate; its processes and the port well-behaved clients use."""
    procs = []
    env = serving.child_env()
    pin = ["taskset", "-c", str(cpu)]
    worker, threads = WORKER_CLASSES["sync" if name == "nginx+sync" else name]
    port = serving.free_port()
    log = work / f"{name}.log"
    proc = serving.start(
        [*pin, sys.executable, __file__, "--serve-one", worker, str(threads), str(config_dir), str(port)], log, env
    )
    procs.append(proc)
    serving.wait_ready(proc, f"http://127.0.0.1:{port}/v2/health/ready", log)
    if name == "nginx+sync":
        front = serving.free_port()
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, upstream=port, port=front))
        nginx = serving.start([*pin, shutil.which("nginx") or "nginx", "-c", str(conf), "-p", str(work)], log, env)
        procs.append(nginx)
        serving.wait_ready(nginx, f"http://127.0.0.1:{front}/v2/health/ready", log)
        port = front
    return procs, port


def measure(name: str, args: argparse.Namespace, config_dir: Path, work: Path) -> dict[str, float]:
    procs, port = start_candidate(name, config_dir, work, args.server_cpu)
    row: dict[str, float] = {}
    try:
        lua = serving.write_lua(work / "one.lua", ONE_ROW)
        url = f"http://127.0.0.1:{port}/v1/predict"
        serving.wrk(url, lua, 8, 1, args.client_cpu)  # warm-up
        for c in (1, 8):
            row[f"c{c} req/s"] = serving.wrk(url, lua, c, args.duration, args.client_cpu)["rps"]
        for kind in ("none", "header", "trickle"):
            count = 0 if kind == "none" else args.slow
            with SlowClients(port, count, kind):
                result = run_probes(port, args.window, args.probe_timeout)
            for what in ("health", "predict"):
                lat, sent = result.latencies[what], result.sent[what]
                row[f"{kind} {what} p50"] = pct(lat, 0.5)
                row[f"{kind} {what} p99"] = pct(lat, 0.99)
                row[f"{kind} {what} ok"] = len(lat) / sent if sent else float("nan")
                row[f"{kind} {what} <100ms"] = sum(1 for v in lat if v < 100) / sent if sent else float("nan")
    finally:
        for proc in reversed(procs):
            serving.stop(proc)  # type: ignore[arg-type]
    return row


def table(rows: dict[str, dict[str, float]], slow: int) -> str:
    """Throughput per candidate, then one line per candidate and kind of slow connection."""
    lines = ["predict throughput, no slow clients (wrk, one-row bodies), requests/s", "",
             "| candidate | c=1 | c=8 |", "| --- | ---: | ---: |"]  # fmt: skip
    lines += [f"| {n} | {r['c1 req/s']:.0f} | {r['c8 req/s']:.0f} |" for n, r in rows.items()]
    lines += ["", f"well-behaved probes with slow connections open (0, or {slow} of a kind); ms of answered probes,",
              "answered share, share answered under 100 ms", "",
              "| candidate | slow | health p50 | health p99 | health answered | health <100ms "
              "| predict p50 | predict p99 | predict answered | predict <100ms |",
              "| --- | --- |" + " ---: |" * 8]  # fmt: skip

    def cell(v: float, share: bool) -> str:
        return "-" if v != v else (f"{v:.0%}" if share else f"{v:.1f}")

    for name, row in rows.items():
        for kind in ("none", "header", "trickle"):
            cells = [name, "0" if kind == "none" else f"{slow} {kind}"]
            for what in ("health", "predict"):
                for stat in ("p50", "p99", "ok", "<100ms"):
                    cells.append(cell(row[f"{kind} {what} {stat}"], stat in ("ok", "<100ms")))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", default="sync,gthread4,gevent,nginx+sync",
                   help="comma-separated (default: all; nginx+sync is skipped when nginx is not installed)")  # fmt: skip
    p.add_argument("--slow", type=int, default=200, help="slow connections held open per row (default 200)")
    p.add_argument("--window", type=float, default=6.0, help="seconds of probing per row (default 6)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk throughput run (default 5)")
    p.add_argument("--probe-timeout", type=float, default=1.0, help="a probe unanswered by then fails (default 1)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2 s windows and 2 s wrk runs")
    p.add_argument("--serve-one", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.window, args.duration = 2.0, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_one:
        worker, threads, config_dir, port = args.serve_one
        serve_one(worker, int(threads), config_dir, int(port))
        return 0
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'}")
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in {*WORKER_CLASSES, "nginx+sync"}]
    if unknown:
        raise SystemExit(f"--candidates: unknown {unknown}; choose from {[*WORKER_CLASSES, 'nginx+sync']}")
    if "nginx+sync" in names and shutil.which("nginx") is None:
        print("nginx is not installed (apt-get install nginx-light): skipping nginx+sync", file=sys.stderr)
        names.remove("nginx+sync")
    signal.signal(signal.SIGTERM, serving._on_signal)
    with tempfile.TemporaryDirectory(prefix="mlrm-slow-") as tmp:
        work = Path(tmp)
        config_dir = work / CONFIG_SET
        shutil.copytree(ROOT / "configs" / CONFIG_SET, config_dir)
        rows: dict[str, dict[str, float]] = {}
        try:
            for name in names:
                print(f"measuring {name} ...", file=sys.stderr, flush=True)
                rows[name] = measure(name, args, config_dir, work)
        finally:
            serving.stop_all()
    print(table(rows, args.slow))
    return 0


if __name__ == "__main__":
    sys.exit(main())
