"""Services grouped into one process by the manifest's `process` key: the plan, the checks, and a real
`mlrm up` whose grouped services each serve, reload, report in `mlrm status`, and come back after a crash."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.config import load_config_set
from mlrm.errors import ConfigError
from mlrm.gateway.commands import plan
from mlrm.gateway.manifest import load_manifest
from mlrm.gateway.state import alive
from mlrm.tools.datasets import breast_cancer
from mlrm.training import trainer
from tests.toolkit.files import copy_config_set, write_manifest
from tests.toolkit.processes import Process, descendants, mlrm, mlrm_args
from tests.toolkit.waiting import wait_until

GROUPED = """\
name: gw
mqtt: {broker: mqtt://127.0.0.1:1883}
services:
  pcb: {config_set: configs/pcb-inspection, port: 8011, process: models, mqtt: true}
  cancer: {config_set: configs/breast-cancer, port: 8011, process: models, workers: 2}
  air: {config_set: configs/air-quality, port: 8012}
  spare: {config_set: configs/machine-anomaly, port: 8011, process: models, enabled: false}
"""


def test_services_of_one_process_are_one_launch_of_mlrm_serve(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, GROUPED), config_sets=False)
    steps = plan(manifest, check_ports=False)
    assert [launch.name for launch in steps.launches] == ["models", "air"]
    models = steps.launches[0]
    argv = models.argv[models.argv.index("serve") :]
    assert argv == ["serve", "configs/pcb-inspection", "configs/breast-cancer", "--host", "127.0.0.1", "--port",
                    "8011", "--workers", "2", "--mqtt-broker", "mqtt://127.0.0.1:1883",
                    "--mqtt-set", "configs/pcb-inspection"]  # fmt: skip
    assert [name for name, _ in models.models] == ["pcb", "cancer"] and models.config_set is None
    assert steps.launches[1].models == () and steps.skipped == {"spare": "disabled"}
    check = mlrm("up", str(tmp_path / "services" / "gw.yaml"), "--check")
    assert check.returncode == 0 and "2 process(es) to start" in check.stdout, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("port: 8013, process: models", "services.cancer.port: port 8013: the services of process 'models' are "
         "served by one gunicorn on one port, and services.pcb.port is 8011. Give them the same port."),
        ("port: 8011, process: air", "process 'air' is also the name of a service; give the process a name of its own"),
    ],
)  # fmt: skip
def test_a_process_needs_one_port_and_a_name_of_its_own(tmp_path: Path, change: str, message: str) -> None:
    text = GROUPED.replace("port: 8011, process: models, workers: 2", change)
    with pytest.raises(ConfigError) as caught:
        load_manifest(write_manifest(tmp_path, text), config_sets=False)
    assert message in str(caught.value)


def _models(manifest: Path) -> dict[str, Any]:
    """`mlrm status --json`: each service of the gateway's processes by name, grouped ones with their process's pid."""
    result = mlrm("status", str(manifest), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    found = {}
    for entry in json.loads(result.stdout)[str(manifest)]["services"]:
        for model in entry.get("models") or [entry]:
            found[model["name"]] = {**model, "pid": entry["pid"], "restarts": entry["restarts"], "url": entry["url"]}
    return found


def test_up_serves_grouped_services_in_one_process_and_reports_each(
    tmp_path: Path, spawn: Callable[..., Process], pcb_instance: dict[str, Any]
) -> None:
    for name in ("breast-cancer", "pcb-inspection"):
        copy_config_set(name, tmp_path / "configs")
    broken = tmp_path / "configs" / "broken"
    broken.mkdir()
    (broken / "service.yaml").write_text("name: broken\nalgoritm: random_forest_classifier\n")
    manifest = tmp_path / "services" / "gw.yaml"
    manifest.parent.mkdir()
    manifest.write_text(
        "name: grouped\n"
        "services:\n"
        "  cancer: {config_set: configs/breast-cancer, port: 0, process: models}\n"
        "  pcb: {config_set: configs/pcb-inspection, port: 0, process: models, workers: 2}\n"
        "  broken: {config_set: configs/broken, port: 0, process: models}\n"
        "supervision: {backoff_initial: 0.2, stop_timeout: 10}\n"
    )
    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=90, what="printing the status table")
    assert "models: live, not ready yet" in up.output() and "a config set of it cannot answer yet" in up.output()
    table = mlrm("status", str(manifest)).stdout
    assert "/v1/models/pcb-inspection" in table and "unavailable" in table, table
    assert "broken: unavailable: " in table and "unknown key 'algoritm'" in table and "Fix: fix " in table
    models = _models(manifest)
    assert (models["cancer"]["ready"], models["pcb"]["ready"], models["broken"]["ready"]) == (
        "yes",
        "yes",
        "unavailable",
    )
    assert models["cancer"]["pid"] == models["pcb"]["pid"]  # one process
    url = models["pcb"]["url"]
    answer = requests.post(f"{url}/v1/models/pcb-inspection/predict", json={"instances": [pcb_instance]}, timeout=10)
    assert answer.status_code == 200 and answer.json()["model"] == {"name": "pcb-inspection", "version": 1}
    broken_answer = requests.post(f"{url}/v1/models/broken/predict", json={"instances": [{}]}, timeout=10)
    assert broken_answer.status_code == 503 and "algoritm" in broken_answer.json()["detail"]

    # A new version of one set goes live in the shared process; the other set stays as it was.
    trainer.train(load_config_set(tmp_path / "configs" / "breast-cancer"), breast_cancer())
    wait_until(lambda: _models(manifest)["cancer"]["version"] == "2", timeout=30, what="version 2 live")
    assert _models(manifest)["pcb"]["version"] == "1"

    victim = models["pcb"]["pid"]
    workers = descendants(victim)
    os.kill(victim, signal.SIGKILL)  # a crash of the process takes every service of it down, and all come back

    def back() -> bool:
        now = _models(manifest)
        return now["pcb"]["restarts"] == 1 and now["pcb"]["ready"] == now["cancer"]["ready"] == "yes"

    wait_until(back, timeout=60, what="the process restarted and both services ready")
    assert not any(alive(pid) for pid in workers)
    everything = descendants(up.pid)
    os.kill(up.pid, signal.SIGTERM)
    assert up.proc.wait(timeout=30) == 0, up.output()
    assert not [pid for pid in everything if alive(pid)]
    logs = tmp_path / "var" / "grouped" / "logs"
    assert {p.name for p in logs.iterdir()} == {"gateway.log", "models.log"}
    assert "serve configs/breast-cancer configs/pcb-inspection configs/broken" in (logs / "models.log").read_text()
