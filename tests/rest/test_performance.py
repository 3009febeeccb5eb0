"""GET /v1/performance: predictions sent with ids, scored by feedback with the same ids, and the report
the ML service pushes to a real `mlrm training-service` for its performance trigger."""

# The fixtures root, cancer_rows and training_service come from tests/conftest.py.

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrm.config import load_config_set
from mlrm.rest import create_app
from mlrm.training.feedback import Feedback
from tests.toolkit.files import configure
from tests.toolkit.training import NAME


def features(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "diagnosis"}


def test_feedback_scores_the_predictions_of_its_ids_and_the_report_reaches_the_training_service(
    root: Path, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]]
) -> None:
    url, _ = training_service(root)
    configure(root / NAME, feedback={"training_service": url, "retry_interval": 0.2})
    app = create_app(load_config_set(root / NAME))
    feedback: Feedback = app.extensions["mlrm"]["feedback"]
    client = app.test_client()
    try:
        before = client.get("/v1/performance").get_json()
        assert before["available"] is False and '"ids"' in before["reason"]
        rows = cancer_rows[:40]
        ids = [f"r{i}" for i in range(40)]
        answer = client.post("/v1/predict", json={"instances": [features(r) for r in rows], "ids": ids})
        assert answer.status_code == 200, answer.get_json()
        predicted = answer.get_json()["predictions"]
        sent = client.post("/v1/feedback", json={"records": rows[:30], "ids": ids[:30]})
        assert sent.status_code == 202 and sent.get_json()["scored"] == 30
        report = client.get("/v1/performance").get_json()
        right = sum(p == r["diagnosis"] for p, r in zip(predicted[:30], rows[:30], strict=True))
        assert report["available"] is True and report["window"]["rows"] == 30
        assert report["metric"] == "f1_macro" and report["model"] == {"name": NAME, "version": 1}
        assert report["holdout"] is not None and report["drop"] == report["holdout"] - report["rolling"]
        assert right < 30 or report["rolling"] == 1.0
        text = client.get("/metrics").get_data(as_text=True)
        assert f'mlrm_performance_rolling{{metric="f1_macro",model="{NAME}"}} {report["rolling"]}' in text
        assert f'mlrm_performance_window_rows{{model="{NAME}"}} 30.0' in text
        # The ML service reports its monitors with each delivery: the training service has them.
        pushed = training_monitors(app, url)
        assert pushed["performance"]["window"]["rows"] == 30 and "drift" in pushed
    finally:
        feedback.close()


def training_monitors(app: Any, url: str) -> dict[str, Any]:
    import requests

    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = requests.get(f"{url}/v1/services/{NAME}/monitors", timeout=5).json()
        if body.get("performance", {}).get("window", {}).get("rows") == 30 or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_ids_are_checked_before_anything_is_predicted_or_kept(root: Path, cancer_rows: list[dict[str, Any]]) -> None:
    configure(root / NAME, feedback={"training_service": "http://127.0.0.1:9"})
    client = create_app(load_config_set(root / NAME)).test_client()
    instances = [features(r) for r in cancer_rows[:2]]
    for ids, pointer in [(["a"], "/ids"), (["a", None], "/ids/1"), (["a", True], "/ids/1"), ("ab", "/ids")]:
        answer = client.post("/v1/predict", json={"instances": instances, "ids": ids})
        assert answer.status_code == 422 and answer.get_json()["errors"][0]["pointer"] == pointer, ids
        answer = client.post("/v1/feedback", json={"records": cancer_rows[:2], "ids": ids})
        assert answer.status_code == 422 and answer.get_json()["errors"][0]["pointer"] == pointer, ids
    assert client.get("/v1/feedback").get_json()["pending"] == 0
    answer = client.post("/v1/predict", json={"instances": instances, "idz": ["a", "b"]})
    assert answer.status_code == 422 and "'idz'" in answer.get_json()["detail"]
