"""HTTPS for `mlrm serve` and `mlrm training-service` (issue 13): real gunicorn, a real TLS client,
a certificate made here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.errors import RemoteError
from mlrm.training.remote import CA_FILE_ENV, TrainingServiceClient
from tests.toolkit.certificates import make_certificate
from tests.toolkit.processes import free_port, mlrm, mlrm_args
from tests.toolkit.waiting import wait_until


def wait_https(url: str, certfile: Path) -> None:
    def answers() -> bool:
        try:
            return requests.get(url, timeout=2, verify=str(certfile)).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(answers, 60, f"answering {url}")


def test_serve_answers_https_to_a_client_that_verifies(
    spawn: Any, config_set: Path, tmp_path: Path, pcb_instance: dict[str, Any]
) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    port = free_port()
    spawn(mlrm_args("serve", str(config_set), "--port", str(port), "--certfile", str(certfile),
                    "--keyfile", str(keyfile)), name="serve")  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    wait_https(f"{url}/v2/health/ready", certfile)
    answer = requests.post(f"{url}/v1/predict", json={"instances": [pcb_instance]}, timeout=5, verify=str(certfile))
    assert answer.status_code == 200
    assert answer.json()["model"]["name"] == "pcb-inspection"
    with pytest.raises(requests.exceptions.SSLError):  # a client that trusts only the system CAs refuses it
        requests.get(f"{url}/v2/health/ready", timeout=5)
    with pytest.raises(requests.ConnectionError):  # plain HTTP is not served on the same port
        requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5)


def test_a_key_without_certificate_or_a_missing_file_is_named(config_set: Path, tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    result = mlrm("serve", str(config_set), "--keyfile", str(keyfile))
    assert result.returncode == 2
    assert "keyfile given without certfile" in result.stderr and "Fix:" in result.stderr
    result = mlrm("serve", str(config_set), "--certfile", str(tmp_path / "nope.pem"), "--keyfile", str(keyfile))
    assert result.returncode == 2
    assert f"certfile {tmp_path / 'nope.pem'}: no such file" in result.stderr
    result = mlrm("serve", str(config_set), "--certfile", str(keyfile), "--keyfile", str(certfile))
    assert result.returncode == 2
    assert "does not load" in result.stderr and "PEM certificate" in result.stderr


def test_training_service_over_https_with_a_ca_file(
    spawn: Any, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    port = free_port()
    spawn(mlrm_args("training-service", "--config-root", str(root), "--port", str(port),
                    "--certfile", str(certfile), "--keyfile", str(keyfile)), name="training")  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    wait_https(f"{url}/v1/health", certfile)
    with TrainingServiceClient(url, ca_file=str(certfile)) as client:
        assert client.call("GET", "/v1/health")[0] == 200
    monkeypatch.setenv(CA_FILE_ENV, str(certfile))
    with TrainingServiceClient(url) as client:
        assert client.call("GET", "/v1/health")[0] == 200
    monkeypatch.delenv(CA_FILE_ENV)
    with TrainingServiceClient(url) as client, pytest.raises(RemoteError, match="SSLError"):
        client.call("GET", "/v1/health")
