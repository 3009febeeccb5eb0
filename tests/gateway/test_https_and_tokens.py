"""A gateway with `tls:` and `credentials:` in its manifest, as a plant runs it: real `mlrm up`,
real gunicorn over HTTPS with a certificate made here, a client that verifies it, `mlrm status`
showing versions through the manifest's client token; broken tls sections named with the fix."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from mlrm.errors import ConfigError
from mlrm.gateway.commands import plan
from mlrm.gateway.manifest import load_manifest
from mlrm.tools.datasets import breast_cancer
from mlrm.training.remote import CA_FILE_ENV
from tests.toolkit.certificates import make_certificate
from tests.toolkit.files import copy_config_set, write_manifest
from tests.toolkit.gateway import status
from tests.toolkit.processes import Process, mlrm, mlrm_args
from tests.toolkit.waiting import wait_until

MANIFEST = """\
name: plant
services:
  breast-cancer: {config_set: configs/breast-cancer, port: 0}
training: {mode: local, port: 0}
credentials: {tokens: secrets/tokens.yaml, client_token: secrets/gateway.token}
tls: {certfile: secrets/cert.pem, keyfile: secrets/key.pem}
supervision: {stop_timeout: 10}
"""


def gateway_token(secrets: Path) -> str:
    """The manifest's client token: feedback needs ingest, the status table's version predict."""
    made = mlrm("token", "create", "gateway", "--scopes", "ingest,predict", "--file", str(secrets / "tokens.yaml"))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    (secrets / "gateway.token").write_text(token + "\n")
    return token


def test_up_serves_https_and_status_shows_versions_with_tokens(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    copy_config_set("breast-cancer", tmp_path / "configs")
    certfile, _ = make_certificate(tmp_path / "secrets")
    token = gateway_token(tmp_path / "secrets")
    manifest = tmp_path / "services" / "plant.yaml"
    manifest.parent.mkdir()
    manifest.write_text(MANIFEST)

    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=90, what="printing the status table")
    services = status(manifest)
    assert {s["ready"] for s in services.values()} == {"yes"}, services
    assert all(s["url"].startswith("https://127.0.0.1:") for s in services.values()), services
    assert services["breast-cancer"]["version"] == "1"  # GET / answered the client token
    table = mlrm("status", str(manifest)).stdout
    assert re.search(r"^breast-cancer +https://127\.0\.0\.1:\d+ +1 +yes ", table, re.M), table
    assert token not in table and token not in up.output()

    ml, training = services["breast-cancer"]["url"], services["training-service"]["url"]
    auth = {"Authorization": f"Bearer {token}"}
    rows = breast_cancer()[:3]
    instance = {k: v for k, v in rows[0].items() if k != "diagnosis"}
    answer = requests.post(f"{ml}/v1/predict", json={"instances": [instance]}, headers=auth, timeout=10,
                           verify=str(certfile))  # fmt: skip
    assert answer.status_code == 200 and answer.json()["model"]["version"] == 1, answer.text
    with pytest.raises(requests.exceptions.SSLError):  # the system's CAs do not vouch for it
        requests.get(f"{ml}/v2/health/ready", timeout=5)

    # Feedback reaches the training service over HTTPS, trusting the manifest's certificate.
    posted = requests.post(f"{ml}/v1/feedback", json={"records": rows}, headers=auth, timeout=10, verify=str(certfile))
    assert posted.status_code < 300, posted.text

    def stored() -> bool:
        stats = requests.get(f"{training}/v1/services/breast-cancer/samples/stats", headers=auth, timeout=5,
                             verify=str(certfile))  # fmt: skip
        return stats.status_code == 200 and stats.json()["total"] == len(rows)

    wait_until(stored, 30, "the feedback stored by the training service")

    os.kill(up.pid, signal.SIGTERM)
    assert up.proc.wait(timeout=60) == 0, up.output()


def tls_manifest(tmp_path: Path, tls: str, training: str = "local") -> Path:
    return write_manifest(
        tmp_path,
        f"name: gw\nservices:\n  a: {{config_set: configs/breast-cancer, port: 0}}\n"
        f"training: {{mode: {training}, port: 0}}\ntls: {tls}\n",
    )


def test_plan_passes_the_certificate_to_every_service_and_trusts_it_for_feedback(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path / "secrets")
    steps = plan(load_manifest(tls_manifest(tmp_path, f"{{certfile: {certfile}, keyfile: {keyfile}}}")))
    for launch in steps.launches:
        assert launch.url.startswith("https://127.0.0.1:")
        assert launch.argv[-4:] == ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    assert steps.training_url is not None and steps.training_url.startswith("https://")
    assert steps.launches[-1].env[CA_FILE_ENV] == str(certfile)


BROKEN = {
    "empty": ("{}", "tls.certfile: tls needs both certfile and keyfile; certfile is missing"),
    "keyfile-missing": ("{certfile: CERT}", "tls.keyfile: tls needs both certfile and keyfile; keyfile is missing"),
    "no-such-file": ("{certfile: NOPE, keyfile: KEY}", "tls.certfile: NOPE: no such file. Fix: give the path"),
    "key-of-another-certificate": (
        "{certfile: CERT, keyfile: OTHER_KEY}",
        "tls.keyfile: certfile CERT with keyfile OTHER_KEY does not load",
    ),
    "certificate-not-naming-the-address": (
        "{certfile: PLANT_CERT, keyfile: PLANT_KEY}",
        "tls.certfile: the certificate names gw.plant.example, not 127.0.0.1, where the ML services send "
        "feedback to the training service (a client that checks host names). Fix: add IP:127.0.0.1",
    ),
    "misspelt-key": ("{certfile: CERT, keyfile: KEY, cafile: CERT}", "tls.cafile: unknown key 'cafile'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_bad_tls_section_names_file_line_key_and_fix(tmp_path: Path, case: str) -> None:
    cert, key = make_certificate(tmp_path / "secrets")
    _, other_key = make_certificate(tmp_path / "secrets", stem="other-")
    plant_cert, plant_key = make_certificate(tmp_path / "secrets", ("gw.plant.example",), stem="plant-")
    paths = {"PLANT_CERT": plant_cert, "PLANT_KEY": plant_key, "OTHER_KEY": other_key, "CERT": cert, "KEY": key,
             "NOPE": tmp_path / "nope.pem"}  # fmt: skip
    section, expected = BROKEN[case]
    for placeholder, path in paths.items():
        section, expected = section.replace(placeholder, str(path)), expected.replace(placeholder, str(path))
    file = tls_manifest(tmp_path, section)
    line = file.read_text().splitlines().index(f"tls: {section}") + 1
    with pytest.raises(ConfigError) as caught:
        load_manifest(file)
    assert f"gw.yaml:{line}: {expected}" in str(caught.value)


def test_up_refuses_a_bad_tls_section_before_starting_anything(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path / "secrets")
    result = mlrm("up", str(tls_manifest(tmp_path, f"{{certfile: {cert}}}")))
    assert result.returncode == 2 and "tls.keyfile: tls needs both certfile and keyfile" in result.stderr
    assert "Fix: add keyfile: PATH" in result.stderr and "Traceback" not in result.stderr


def test_a_remote_training_service_needs_no_name_from_the_certificate(tmp_path: Path) -> None:
    plant_cert, plant_key = make_certificate(tmp_path / "secrets", ("gw.plant.example",))
    text = f"{{certfile: {plant_cert}, keyfile: {plant_key}}}"
    steps = plan(load_manifest(tls_manifest(tmp_path, text, "remote, url: 'https://10.0.0.5:8100'")))
    assert steps.training_url == "https://10.0.0.5:8100" and CA_FILE_ENV not in steps.launches[0].env
