"""docs/mqtt.md's step-by-step runs as written: mosquitto_pub in, the answer seen with mosquitto_sub.

The commands are read from the page itself; only the broker's and the REST
service's ports are changed to the test's own (a test broker on a free port).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.toolkit.brokers import Broker, need_mosquitto
from tests.toolkit.files import ROOT
from tests.toolkit.processes import Process, env, free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PAGE = (ROOT / "docs" / "mqtt.md").read_text()
STEPS = PAGE[PAGE.index("## Step by step") : PAGE.index("## Payloads")]
BLOCKS = re.findall(r"```sh\n(.*?)```", STEPS, re.S)
SAMPLES = PAGE[PAGE.index("## Training samples over MQTT") : PAGE.index("### What runs")]
SAMPLE_BLOCKS = re.findall(r"```sh\n(.*?)```", SAMPLES, re.S)


class Shell:
    """Runs the page's commands in one folder, as a user would in several terminals; the long-running
    ones as tests.servers.Process (own process group, output in a log, stopped at teardown)."""

    def __init__(self, cwd: Path, broker: Broker, spawn: Callable[..., Process]) -> None:
        self.cwd, self.broker, self.spawn, self.http = cwd, broker, spawn, free_port()
        self.training_http = free_port()
        self.path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # mlrm on PATH

    def adapt(self, command: str) -> str:
        port = self.broker.port
        return (
            command.replace("localhost:1883", f"127.0.0.1:{port}")
            .replace("-h localhost", f"-h 127.0.0.1 -p {port}")
            .replace("localhost:8000", f"127.0.0.1:{self.http}")
            .replace("--port 8000", f"--port {self.http}")
            .replace("localhost:8100", f"127.0.0.1:{self.training_http}")
            .replace("--port 8100", f"--port {self.training_http}")
        )

    def until_subscribed(self, sub: Process, topic: str) -> None:
        """Publish to topic until sub shows it (bounded): then it sees everything after."""
        for _ in range(100):
            self.run(f"mosquitto_pub -h localhost -q 1 -t {topic} -m ping")
            if topic in sub.output():
                return
            time.sleep(0.1)

    def run(self, command: str) -> str:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", self.adapt(command)], cwd=self.cwd,
                                env={**env(), "PATH": self.path}, capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        return result.stdout

    def start(self, command: str, name: str) -> Process:
        script = f"export PATH={shlex.quote(self.path)}; exec {self.adapt(command).strip()}"
        return self.spawn(["bash", "-c", script], name=name, cwd=self.cwd)


@pytest.fixture
def shell(tmp_path: Path, broker: Broker, spawn: Callable[..., Process]) -> Shell:
    need_mosquitto()
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto-clients (mosquitto_pub, mosquitto_sub) are not installed")
    for name in ("pcb-inspection", ".mlrm"):
        shutil.copytree(ROOT / "configs" / name, tmp_path / "configs" / name)
    return Shell(tmp_path, broker, spawn)


def test_the_step_by_step_of_docs_mqtt_md(shell: Shell, tmp_path: Path) -> None:
    install, config, serve, subscribe, good, bad, batch, health = BLOCKS
    assert "apt-get install" in install

    assert "ok: var/my-pcb" in shell.run(config)  # 1. an mqtt section that validates

    server = shell.start(serve, "serve")  # 2. REST and MQTT together
    server.wait_until(lambda: "connected to mqtt://" in server.output(), 60, "connected to the broker")

    sub = shell.start(subscribe, "sub")  # 3. watch the answers
    shell.until_subscribed(sub, "plant/ping/pcb/ping")

    for command in (good, bad, batch):  # 4, 5, 6
        shell.run(command)

    def answered() -> bool:
        text = sub.output()
        return all(f'"id":"{i}"' in text for i in ("m-1", "m-2", "b-1")) and text.count("/pcb/") >= 7

    sub.wait_until(answered, 30, "showing the prediction, the error and the batch's answer")
    lines = {line.split(" ", 1)[0] + " " + re.search(r'"id":"([^"]+)"', line)[1]: line  # type: ignore[index]
             for line in sub.output().splitlines() if '"id":"' in line and not line.split(" ", 1)[0].endswith("/measurements")}  # fmt: skip

    answer = lines["plant/line-3/pcb/predictions m-1"]
    assert '"device":"line-3"' in answer and '"prediction":"' in answer and '"probabilities":{' in answer
    assert '"model":{"name":"pcb-inspection","version":1}' in answer and '"took_ms":' in answer
    problem = lines["plant/line-3/pcb/errors m-2"]
    assert '"status":422' in problem and '"pointer":"/volume_pct"' in problem and "out of range" in problem
    assert '"predictions":[' in lines["plant/line-3/pcb/predictions b-1"]

    # 7. the bridge's health and metrics. The bridge writes its status file once a second, so on a
    # loaded machine the first look may still show the file written before it connected.
    deadline = time.monotonic() + 20
    out = shell.run(health)
    while '"state":"connected"' not in out.replace(" ", "") and time.monotonic() < deadline:
        time.sleep(0.5)
        out = shell.run(health)
    assert '"state":"connected"' in out.replace(" ", "") and "mlrm_mqtt_" in out


def test_the_training_samples_steps_of_docs_mqtt_md(shell: Shell) -> None:
    config, start, watch, publish, stats = SAMPLE_BLOCKS
    assert "ok: var/training/pcb-inspection" in shell.run(config)  # 1. a config set with training_in

    service = shell.start(start, "training-service")  # 2. the training service subscribes
    subscribed = "pcb-inspection/training: subscribed to plant/+/pcb/samples"
    service.wait_until(lambda: subscribed in service.output(), 60, "subscribed to training_in")
    assert subscribed in SAMPLES  # the log line the page tells to wait for

    sub = shell.start(watch, "sub")  # 3. watch the errors
    shell.until_subscribed(sub, "plant/ping/pcb/errors")
    shell.run(publish)  # 4. a sample, and a batch with an incomplete record
    sub.wait_until(lambda: '"id":"s-2"' in sub.output(), 30, "showing the rejected record")
    problem = next(line for line in sub.output().splitlines() if '"id":"s-2"' in line)
    assert problem.startswith("plant/line-3/pcb/errors ") and '"pointer":"/records/1/area_pct"' in problem
    assert '"detail":"stored 1 of 2 records, rejected 1 ' in problem

    assert json.loads(shell.run(stats))["total"] == 2  # 5. both good records, once


def test_the_readme_shows_the_same_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Over MQTT") :]
    section = section[: section.index("\n## ")]
    shown = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(shown) == 4 and all(block in BLOCKS for block in shown)
