"""The dashboard's server as a network sees it: the page and its files open and fenced in, the
snapshot behind scope metrics, actions behind admin and only from the page itself, and no start
off loopback without tokens. A real `python -m mlrm.dashboard` over a gateway state file with no
services, so no gunicorn is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from mlrm.credentials import create
from tests.toolkit.certificates import make_certificate
from tests.toolkit.processes import Process, env, free_port


def state_file(tmp_path: Path) -> Path:
    """The state file of a gateway 'g' with no services, 'run' by this test process."""
    path = tmp_path / "gateway.json"
    state = {"gateway": "g", "manifest": "services/g.yaml", "pid": os.getpid(), "started_at": "2026-12-01T00:00:00",
             "services": [], "training_url": None, "skipped": {}}  # fmt: skip
    path.write_text(json.dumps(state))
    return path


def test_the_page_is_open_the_data_needs_metrics_and_actions_admin(
    tmp_path: Path, spawn: Callable[..., Process]
) -> None:
    tokens = tmp_path / "tokens.yaml"
    watch, operator, camera = (create(tokens, n, s) for n, s in
                               (("wall", ["metrics"]), ("operator", ["admin"]), ("camera", ["predict"])))  # fmt: skip
    port = free_port()
    args = ["--state", str(state_file(tmp_path)), "--port", str(port), "--tokens", str(tokens), "--interval", "0.5"]
    board = spawn([sys.executable, "-m", "mlrm.dashboard", *args], name="dashboard")
    url = f"http://127.0.0.1:{port}"
    board.wait_http(url + "/healthz")

    page = requests.get(url + "/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert requests.get(url + "/static/vendor/uPlot.LICENSE", timeout=5).status_code == 200
    for outside in ("/static/../server.py", "/static/%2e%2e/server.py", "/etc/passwd", "/static/"):
        assert requests.get(url + outside, timeout=5).status_code == 404, outside

    def get(token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(url + "/api/state", headers=headers, timeout=5)

    refused = get(None)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "scope 'metrics'" in refused.json()["detail"]
    assert get(camera).status_code == 403
    assert get("mlrm_not-a-token").status_code == 401
    board.wait_until(lambda: get(watch).json().get("gateway") == "g", what="a first sample")

    def act(token: str, **extra: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **extra}
        return requests.post(url + "/api/services/pcb/rollback", data=b'{"version": 1}', headers=headers, timeout=5)

    assert act(watch).status_code == 403  # watching is not acting
    assert act(operator, **{"Content-Type": "text/plain"}).status_code == 415  # a form elsewhere cannot post
    assert act(operator, Origin="http://evil.example").status_code == 403
    assert act(operator, Origin=url).status_code == 404  # allowed; this gateway has no such service
    assert "no training service" in act(operator).json()["detail"]
    big = requests.post(url + "/api/services/pcb/train", data=b"x" * 2000, timeout=5,
                        headers={"Authorization": f"Bearer {operator}", "Content-Type": "application/json"})  # fmt: skip
    assert big.status_code == 413


def test_off_loopback_without_tokens_it_refuses_to_start(tmp_path: Path) -> None:
    args = ["--state", str(state_file(tmp_path)), "--host", "0.0.0.0", "--port", str(free_port())]
    result = subprocess.run([sys.executable, "-m", "mlrm.dashboard", *args], capture_output=True, text=True,
                            env=env(), timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 without credentials" in result.stderr and "--tokens" in result.stderr


def test_with_a_certificate_it_serves_https_only(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    port = free_port()
    args = ["--state", str(state_file(tmp_path)), "--port", str(port), "--certfile", str(certfile), "--keyfile",
            str(keyfile)]  # fmt: skip
    board = spawn([sys.executable, "-m", "mlrm.dashboard", *args], name="dashboard")
    board.wait_until(lambda: requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(certfile), timeout=5).ok,
                     what="answering over HTTPS")  # fmt: skip
    assert requests.get(f"https://127.0.0.1:{port}/", verify=str(certfile), timeout=5).status_code == 200
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        raise AssertionError("plain HTTP was answered")
    except requests.ConnectionError:
        pass
