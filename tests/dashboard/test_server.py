"""The dashboard's server as a network sees it: the page and its files open and fenced in, the
snapshot behind scope metrics, actions behind admin and only from the page itself, and no start
off loopback without tokens. A real `python -m mlrm.dashboard` over a gateway state file with no
services (tests/toolkit/dashboard.py), so no gunicorn is needed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import requests

from mlrm.credentials import create
from tests.toolkit.certificates import make_certificate
from tests.toolkit.dashboard import dashboard_args, start_dashboard
from tests.toolkit.processes import Process, env, free_port


def test_the_page_is_open_the_data_needs_metrics_and_actions_admin(
    tmp_path: Path, spawn: Callable[..., Process]
) -> None:
    tokens = tmp_path / "tokens.yaml"
    watch, operator, camera = (create(tokens, n, s) for n, s in
                               (("wall", ["metrics"]), ("operator", ["admin"]), ("camera", ["predict"])))  # fmt: skip
    url, board = start_dashboard(spawn, tmp_path, "--tokens", str(tokens))

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
    args = dashboard_args(tmp_path, free_port(), "--host", "0.0.0.0")
    result = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 without credentials" in result.stderr and "--tokens" in result.stderr


def test_with_a_certificate_it_serves_https_only(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    port = free_port()
    args = dashboard_args(tmp_path, port, "--certfile", str(certfile), "--keyfile", str(keyfile))
    board = spawn(args, name="dashboard")
    board.wait_until(lambda: requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(certfile), timeout=5).ok,
                     what="answering over HTTPS")  # fmt: skip
    assert requests.get(f"https://127.0.0.1:{port}/", verify=str(certfile), timeout=5).status_code == 200
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        raise AssertionError("plain HTTP was answered")
    except requests.ConnectionError:
        pass
