"""Slow clients cannot starve a service reachable beyond loopback (issue 13): a real `mlrm serve`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.rest.server import worker_class_for
from tests.toolkit.processes import free_port, mlrm_args

SLOW = 50  # connections that each hold half a request; a sync worker would be held by the first


@contextmanager
def half_requests(port: int, count: int) -> Iterator[list[socket.socket]]:
    """count connections that each send half a request header and then wait."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: plant\r\nContent-Type: appli")
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def test_beyond_loopback_gevent_on_loopback_sync() -> None:
    assert worker_class_for("0.0.0.0") == "gevent"
    assert worker_class_for("192.168.1.20") == "gevent"
    assert worker_class_for("127.0.0.1") == "sync"
    assert worker_class_for("localhost") == "sync"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_half_open_requests_do_not_stop_health_or_predict(
    spawn: Any, config_set: Path, pcb_instance: dict[str, Any], workers: str
) -> None:
    port = free_port()
    process = spawn(
        mlrm_args("serve", str(config_set), "--host", "0.0.0.0", "--port", str(port), "--workers", workers,
                  "--insecure"),
        name="serve",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process.wait_http(f"{url}/v2/health/ready")
    with half_requests(port, SLOW):
        for _ in range(5):
            # A fresh connection each time, as a probe or a client at the plant makes it.
            assert requests.get(f"{url}/v2/health/ready", timeout=5).json() == {"ready": True}
            answer = requests.post(f"{url}/v1/predict", json={"instances": [pcb_instance]}, timeout=5)
            assert answer.status_code == 200
            assert answer.json()["model"]["name"] == "pcb-inspection"
    assert process.alive()
