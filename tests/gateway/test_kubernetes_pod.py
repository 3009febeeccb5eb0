"""An exported pod, run here: its init container and its container's command, with the pod's paths
under a temporary folder. The seeded config set serves, the probes answer without a token, the API
wants one, and SIGTERM stops it within the grace period the Deployment gives."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import requests

from mlrm import credentials
from mlrm.gateway.kubernetes import DRAIN_S, Options, export
from mlrm.gateway.manifest import load_manifest
from tests.toolkit.files import ROOT, write_manifest
from tests.toolkit.processes import Process, free_port


def mapped(value: str, tmp: Path) -> str:
    """A path in the pod as it is here: its volumes under tmp, the image's project folder as this checkout."""
    for prefix, here in (("/var/lib/mlrm", tmp / "state"), ("/etc/mlrm", tmp / "etc"), ("/app/", f"{ROOT}/")):
        if value.startswith(prefix):
            return str(here) + value[len(prefix) :]
    return value


def materialise(docs: list[dict[str, Any]], tmp: Path, token: str) -> None:
    """The ConfigMap and the credentials Secret, mounted as kubelet would (without its ..data links)."""
    [config_map] = [d for d in docs if d["kind"] == "ConfigMap"]
    folder = tmp / "etc" / "config-sets" / "breast-cancer"
    folder.mkdir(parents=True)
    (folder / "service.yaml").write_text(config_map["data"]["service.yaml"])
    secret = tmp / "etc" / "credentials"
    secret.mkdir(parents=True)
    credentials.create(secret / "tokens.yaml", "client", ["predict"])
    (secret / "client-token").write_text(token)


def test_an_exported_ml_service_pod_seeds_serves_and_stops_in_time(tmp_path: Path) -> None:
    port = free_port()
    text = (
        f'name: gw\nservices:\n  bc: {{config_set: configs/breast-cancer, port: {port}}}\ntraining: {{mode: "off"}}\n'
    )
    docs = export(load_manifest(write_manifest(tmp_path, text)), Options()).objects
    materialise(docs, tmp_path, "unused")
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [seed] = pod["initContainers"]
    init = Process([sys.executable, *[mapped(a, tmp_path) for a in seed["command"][1:]]], tmp_path / "seed.log")
    init.proc.wait(60)
    assert init.stop() == 0, init.output()
    assert (tmp_path / "state" / "configs" / "breast-cancer" / "learned" / "current.yaml").is_file()

    [c] = pod["containers"]
    variables = [f"{e['name']}={mapped(e['value'], tmp_path)}" for e in c["env"]]
    argv = ["env", *variables, sys.executable, "-m", "mlrm", *[mapped(a, tmp_path) for a in c["args"]]]
    service = Process(argv, tmp_path / "pod.log", cwd=Path(mapped(c["workingDir"], tmp_path)))
    try:
        base = f"http://127.0.0.1:{c['ports'][0]['containerPort']}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            service.wait_http(base + c[probe]["httpGet"]["path"], timeout=60)  # no token: probes are open
        assert requests.get(f"{base}/v2/models/breast-cancer", timeout=5).status_code == 401
        started = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)  # what the kubelet sends after preStop
        assert service.proc.wait(pod["terminationGracePeriodSeconds"] - DRAIN_S) == 0
        assert time.monotonic() - started < pod["terminationGracePeriodSeconds"] - DRAIN_S
    finally:
        service.stop()
