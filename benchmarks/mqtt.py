"""MQTT end to end: messages/s and latency through a real Mosquitto, single-record messages.

    python benchmarks/mqtt.py             # 3 repetitions, about a minute
    python benchmarks/mqtt.py --quick     # 1 short repetition

Starts Mosquitto on a free loopback port and, side by side in one run:

- echo:          a bare paho client that republishes each message as it comes
                 (the floor: broker and paho, no model, no outbox);
- mlrm (normal): the real bridge (`mlrm mqtt`) answering configs/pcb-inspection
                 (random forest, 100 trees), outbox synchronous: normal;
- mlrm (full):   the same with outbox synchronous: full (the default: an fsync
                 per stored answer and per batch of acknowledgements).

For each: latency = one message at a time, publish -> answer received by a
subscriber (p50/p99 over --latency-n messages); throughput = --burst-n
messages published as fast as QoS 1 allows, first publish to last answer.
Repetitions rotate through the targets, so drift on a shared machine hits all
alike; the table shows medians over repetitions. Also shows the bridge's own
handling time (took_ms in the answers), so transport and model can be told apart.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import free_port, stop_group  # noqa: E402  (benchmarks/harness.py, beside this script)

from mlrm.tools.datasets import pcb_inspection  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
IN, OUT = "bench/{device}/in", "bench/{device}/out"


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as MqttClient does


def echo(port: int, name: str) -> None:
    """The floor: republish every message on the out topic at once (run in its own process)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"echo-{name}", protocol=mqtt.MQTTv5)

    def on_connect(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        c.subscribe(f"{name}/+/in", qos=1)

    def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        c.publish(m.topic.rsplit("/", 1)[0] + "/out", m.payload, qos=1)

    client.on_connect, client.on_message, client.on_socket_open = on_connect, on_message, no_delay
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port, 30)
    client.loop_forever()


class Probe:
    """Publishes measurements and times the answers (ids are unique per run)."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.sent: dict[str, float] = {}
        self.got: dict[str, float] = {}
        self.took: list[float] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{prefix}-{os.getpid()}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.max_inflight_messages_set(100)
        ready = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(f"{prefix}/+/out", qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.on_socket_open = no_delay
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("probe did not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = orjson.loads(message.payload)
        with self.cond:
            self.got.setdefault(body["id"], now)
            if "took_ms" in body:
                self.took.append(body["took_ms"])
            self.cond.notify_all()

    def send(self, key: str, record: dict[str, Any]) -> None:
        self.sent[key] = time.perf_counter()
        self.client.publish(f"{self.prefix}/d1/in", orjson.dumps({**record, "id": key}), qos=1)

    def wait(self, keys: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(k in self.got for k in keys):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{sum(k in self.got for k in keys)}/{len(keys)} answers after {timeout}s")
                self.cond.wait(left)

    def latency(self, records: list[dict[str, Any]], run: str) -> list[float]:
        out = []
        for i, record in enumerate(records):
            key = f"{run}-l{i}"
            self.send(key, record)
            self.wait([key], 10)
            out.append((self.got[key] - self.sent[key]) * 1000)
        return out

    def burst(self, records: list[dict[str, Any]], run: str) -> float:
        keys = [f"{run}-b{i}" for i in range(len(records))]
        started = time.perf_counter()
        for key, record in zip(keys, records, strict=True):
            self.send(key, record)
        self.wait(keys, 120)
        return len(keys) / (max(self.got[k] for k in keys) - started)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def config_set(tmp: Path, name: str, port: int, synchronous: str) -> Path:
    folder = tmp / name
    shutil.copytree(ROOT / "configs" / "pcb-inspection", folder)
    mqtt_section = {
        "broker": f"mqtt://127.0.0.1:{port}",
        "client_id": f"bench-{name}",
        "clean_start": True,
        "topics": {"predict_in": f"{name}/{{device}}/in", "predict_out": f"{name}/{{device}}/out", "errors": None},
        "outbox": {"synchronous": synchronous},
    }
    file = folder / "service.yaml"
    file.write_text(file.read_text() + "\n" + yaml.safe_dump({"mqtt": mqtt_section}, sort_keys=False))
    return folder


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one short repetition")
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--latency-n", type=int, default=300)
    p.add_argument("--burst-n", type=int, default=1000)
    p.add_argument(
        "--broker-nagle",
        action="store_true",
        help="keep Mosquitto's default set_tcp_nodelay false (answers then wait ~40 ms for TCP ACKs)",
    )
    p.add_argument("--echo", nargs=2, metavar=("PORT", "NAME"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.echo:
        echo(int(args.echo[0]), args.echo[1])
        return 0
    if args.quick:
        args.repetitions, args.latency_n, args.burst_n = 1, 100, 300
    if not Path(MOSQUITTO).is_file():
        print("mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 2
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_inspection(rows=500, seed=3)]
    tmp = Path(tempfile.mkdtemp(prefix="mlrm-bench-mqtt-"))
    port = free_port()
    (tmp / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        "max_queued_messages 100000\nmax_inflight_messages 100\n"
        + ("" if args.broker_nagle else "set_tcp_nodelay true\n")
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        broker = start([MOSQUITTO, "-c", str(tmp / "mosquitto.conf")], tmp / "mosquitto.log")
        procs.append(broker)
        wait_port(port)
        targets = {"echo": "echo", "mlrm (normal)": "normal", "mlrm (full)": "full"}
        for label, kind in targets.items():
            name = label.split()[0] if kind == "echo" else f"mlrm-{kind}"
            if kind == "echo":
                procs.append(start([sys.executable, __file__, "--echo", str(port), name], tmp / f"{name}.log"))
            else:
                folder = config_set(tmp, name, port, kind)
                procs.append(start([sys.executable, "-m", "mlrm", "mqtt", str(folder), "--log-level", "warning"],
                                   tmp / f"{name}.log"))  # fmt: skip
        probes = {label: Probe(port, "echo" if kind == "echo" else f"mlrm-{kind}") for label, kind in targets.items()}
        for probe in probes.values():  # warm up, and wait for the bridges to be up (60 s at most)
            deadline = time.monotonic() + 60
            while True:
                try:
                    probe.latency(rows[:20], "warm")
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        results: dict[str, dict[str, list[float]]] = {
            k: {"p50": [], "p99": [], "rate": [], "took": []} for k in targets
        }
        order = list(targets)
        for rep in range(args.repetitions):
            for label in order[rep % len(order) :] + order[: rep % len(order)]:
                probe = probes[label]
                probe.took.clear()
                lat = probe.latency([rows[i % len(rows)] for i in range(args.latency_n)], f"r{rep}")
                results[label]["p50"].append(pct(lat, 0.5))
                results[label]["p99"].append(pct(lat, 0.99))
                if probe.took:
                    results[label]["took"].append(statistics.median(probe.took))
                results[label]["rate"].append(
                    probe.burst([rows[i % len(rows)] for i in range(args.burst_n)], f"r{rep}")
                )
            print(f"repetition {rep + 1}/{args.repetitions} done", file=sys.stderr, flush=True)
        for probe in probes.values():
            probe.close()
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nMQTT end to end through Mosquitto, single-record messages, QoS 1, {os.cpu_count()} CPUs, "
          f"medians of {args.repetitions} repetition(s); latency over {args.latency_n} sequential messages, "
          f"throughput over bursts of {args.burst_n}; broker set_tcp_nodelay {not args.broker_nagle}\n")  # fmt: skip
    print(f"{'target':<16}{'msgs/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'handler ms':>12}")
    for label, r in results.items():
        took = f"{statistics.median(r['took']):.2f}" if r["took"] else "-"
        print(f"{label:<16}{statistics.median(r['rate']):>10.0f}{statistics.median(r['p50']):>10.2f}"
              f"{statistics.median(r['p99']):>10.2f}{took:>12}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
