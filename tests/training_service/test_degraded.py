"""A config set the training service cannot use is reported with its fix; the others keep working."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import requests

from tests.toolkit.processes import Process
from tests.toolkit.training import NAME

PROBLEM = "application/problem+json"


def broken_copy(root: Path) -> Path:
    """A copy of the root's set named 'broken' with a misspelt key."""
    folder = root / "broken"
    shutil.copytree(root / NAME, folder)
    text = (folder / "service.yaml").read_text(encoding="utf-8")
    text = text.replace(f"name: {NAME}", "name: broken", 1).replace("algorithm:", "algoritm:", 1)
    (folder / "service.yaml").write_text(text, encoding="utf-8")
    return folder


def test_one_broken_set_degrades_the_service_and_answers_503_with_the_fix(
    root: Path, training_service: Callable[..., tuple[str, Process]]
) -> None:
    folder = broken_copy(root)
    url, process = training_service(root)

    health = requests.get(f"{url}/v1/health", timeout=5)
    assert health.status_code == 200  # degraded, not dead: the gateway's probe still passes
    body = health.json()
    assert body["status"] == "degraded"
    [missing] = body["unavailable"]
    assert missing["name"] == "broken" and "unknown key 'algoritm'" in missing["reason"]
    assert "mlrm validate" in missing["fix"]

    listed = {s["name"]: s for s in requests.get(f"{url}/v1/services", timeout=5).json()["services"]}
    assert listed[NAME]["available"] is True and listed["broken"]["available"] is False

    answer = requests.post(f"{url}/v1/services/broken/samples", json={"records": [{}]}, timeout=5)
    assert answer.status_code == 503 and answer.headers["Content-Type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["type"].endswith("/service-unavailable") and "algoritm" in problem["detail"]
    assert "Fix:" in problem["detail"]
    # The usable set is untouched.
    assert requests.get(f"{url}/v1/services/{NAME}/samples/stats", timeout=5).status_code == 200
    process.wait_until(lambda: "degraded: config set 'broken' is unavailable" in process.output(), 10, "the log line")

    # Fixed on disk: the next request loads it, and the service is healthy again. (Its full check runs
    # in a child that imports scikit-learn, which the service itself never does: seconds on a busy machine.)
    text = (folder / "service.yaml").read_text(encoding="utf-8")
    (folder / "service.yaml").write_text(text.replace("algoritm:", "algorithm:", 1), encoding="utf-8")
    assert requests.get(f"{url}/v1/services/broken", timeout=60).status_code == 200
    assert requests.get(f"{url}/v1/health", timeout=5).json()["status"] == "ok"
