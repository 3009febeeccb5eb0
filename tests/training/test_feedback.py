"""POST /v1/feedback on the ML service: validated like training data, kept in
a durable outbox while the training service is down, then delivered in
order and exactly once (a real `mlrm training-service` process)."""

# The fixtures root, cancer_rows and training_service come from the training service's tests.
# ruff: noqa: F811

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from mlrm.config import load_config_set
from mlrm.rest import create_app
from mlrm.training.feedback import Feedback
from tests.toolkit.files import configure
from tests.toolkit.processes import free_port
from tests.toolkit.training import NAME
from training_service.store_url import open_store


@pytest.fixture
def ml_client(root: Path) -> Iterator[tuple[FlaskClient, Feedback, int]]:
    """The ML service of breast-cancer in-process, sending feedback to a port nothing listens on yet."""
    port = free_port()
    configure(
        root / NAME, feedback={"training_service": f"http://127.0.0.1:{port}", "retry_interval": 0.2, "timeout": 2}
    )
    app = create_app(load_config_set(root / NAME))
    feedback: Feedback = app.extensions["mlrm"]["feedback"]
    yield app.test_client(), feedback, port
    feedback.close()


def test_feedback_without_a_training_service_says_how_to_configure_it(client: FlaskClient) -> None:
    answer = client.post("/v1/feedback", json={"records": []})
    assert answer.status_code == 503
    assert answer.content_type == "application/problem+json"
    assert "feedback.training_service" in answer.get_json()["detail"]
    assert "MLRM_TRAINING_SERVICE" in answer.get_json()["detail"]


def test_bad_feedback_is_refused_by_pointer_and_never_queued(ml_client: Any, cancer_rows: list[dict[str, Any]]) -> None:
    client, feedback, _ = ml_client
    answer = client.post("/v1/feedback", json={"records": [cancer_rows[0], {**cancer_rows[1], "diagnosis": "flu"}]})
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["pointer"] == "/records/1/diagnosis"
    assert client.post("/v1/feedback", json={"records": [cancer_rows[0]] * 1001}).status_code == 413
    assert feedback.status()["pending"] == 0


@pytest.mark.slow
def test_outbox_delivers_in_order_exactly_once_after_an_outage(
    ml_client: Any, root: Path, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]]
) -> None:
    client, feedback, port = ml_client
    for i in range(3):  # the training service is down
        answer = client.post("/v1/feedback", json={"records": cancer_rows[10 * i : 10 * i + 10]})
        assert answer.status_code == 202
        assert answer.get_json()["delivered"] is False and answer.get_json()["pending"] == i + 1
    assert "ConnectionError" in client.get("/v1/feedback").get_json()["last_error"]
    with sqlite3.connect(feedback.outbox.path) as db:
        queued = db.execute("SELECT key, body FROM outbox ORDER BY seq").fetchall()

    training_service(root, port=port)
    # Nobody posts: the retry thread delivers the backlog on its own.
    deadline = time.monotonic() + 20
    while client.get("/v1/feedback").get_json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/v1/feedback").get_json()["pending"] == 0
    answer = client.post("/v1/feedback", json={"records": cancer_rows[30:40]}).get_json()
    assert answer["delivered"] is True and answer["pending"] == 0

    store = open_store(f"sqlite:///{root / 'training.sqlite'}")
    assert store.records(NAME, 10**9) == cancer_rows[:40]  # in order, each once

    # Acknowledgements lost on the way back (entries still in the outbox): delivered again, stored once.
    with sqlite3.connect(feedback.outbox.path) as db:
        db.executemany("INSERT INTO outbox (key, body, created_at) VALUES (?, ?, 0)", queued)
    assert len(feedback.deliver()) == 3
    assert store.records(NAME, 10**9) == cancer_rows[:40]
    assert feedback.status()["dead"] == 0


def test_each_set_of_a_grouped_service_forwards_feedback_through_its_own_outbox(
    root: Path, training_service: Callable[..., Any], cancer_rows: list[dict[str, Any]], pcb_rows: list[dict[str, Any]]
) -> None:
    """`mlrm serve A B`: POST /v1/models/NAME/feedback reaches the training service as NAME's samples."""
    from mlrm.core.service_set import ServiceSet
    from tests.toolkit.files import copy_config_set

    copy_config_set("pcb-inspection", root)
    port = free_port()
    for name in (NAME, "pcb-inspection"):
        configure(root / name, feedback={"training_service": f"http://127.0.0.1:{port}", "timeout": 5})
    training_service(root, port=port)
    app = create_app(ServiceSet([root / NAME, root / "pcb-inspection"]))
    client = app.test_client()
    outboxes = set()
    for name, rows in ((NAME, cancer_rows[:5]), ("pcb-inspection", pcb_rows[:7])):
        answer = client.post(f"/v1/models/{name}/feedback", json={"records": rows})
        assert answer.status_code == 202 and answer.get_json()["delivered"] is True, answer.get_json()
        outboxes.add(client.get(f"/v1/models/{name}/feedback").get_json()["outbox"])
    assert len(outboxes) == 2  # one durable outbox per set, as each has alone
    store = open_store(f"sqlite:///{root / 'training.sqlite'}")
    assert store.records(NAME, 10**9) == cancer_rows[:5]
    assert len(store.records("pcb-inspection", 10**9)) == 7
    for api in app.extensions["mlrm"]["models"].apis.values():
        api.feedback.close()
