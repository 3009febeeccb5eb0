"""A feedback post that the training service can never accept (here 413: it
takes fewer records per post than the ML service does) is set aside as dead,
with the training service's answer, and does not block the posts after it.
A real `mlrm training-service` process answers, through TrainingServiceClient."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlrm.config import load_config_set
from mlrm.rest import create_app
from mlrm.training.feedback import Feedback
from tests.toolkit.files import configure
from tests.toolkit.processes import free_port
from tests.toolkit.training import NAME
from training_service.store_url import open_store


@pytest.mark.slow
def test_a_refused_post_is_set_aside_and_the_next_is_delivered(
    root: Path, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]]
) -> None:
    port = free_port()
    configure(root / NAME, feedback={"training_service": f"http://127.0.0.1:{port}", "timeout": 5})
    training_service(root, "--max-records", "5", port=port)
    app = create_app(load_config_set(root / NAME))
    feedback: Feedback = app.extensions["mlrm"]["feedback"]
    client = app.test_client()
    try:
        refused = client.post("/v1/feedback", json={"records": cancer_rows[:10]})
        assert refused.status_code == 202  # the ML service's own checks pass: it is kept, not lost
        body = refused.get_json()
        assert body["delivered"] is False and body["pending"] == 0 and body["dead"] == 1
        assert ": 413 " in body["last_error"]

        answer = client.post("/v1/feedback", json={"records": cancer_rows[10:13]}).get_json()
        assert answer["delivered"] is True and answer["pending"] == 0 and answer["dead"] == 1
    finally:
        feedback.close()
    store = open_store(f"sqlite:///{root / 'training.sqlite'}")
    assert store.records(NAME, 10**9) == cancer_rows[10:13]
