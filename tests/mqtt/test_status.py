"""REST /v1/mqtt reads the bridge's status file: connected, disconnected, stale, absent."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flask.testing import FlaskClient

from mlrm.config import load_config_set
from mlrm.rest import create_app
from mlrm.storage.bridge_status import STALE_AFTER, write_status
from tests.toolkit.brokers import mqtt_config_set


def test_without_mqtt_section_the_endpoint_says_how_to_add_one(client: FlaskClient) -> None:
    answer = client.get("/v1/mqtt")
    assert answer.status_code == 404 and "add an mqtt section" in answer.get_json()["detail"]


def test_status_file_states(tmp_path: Path) -> None:
    config = load_config_set(mqtt_config_set(tmp_path, "mqtt://127.0.0.1:1"))
    assert create_app(config).test_client().get("/v1/mqtt").get_json()["state"] == "not-running"
    status = tmp_path / "status.json"
    client = create_app(config, mqtt_status=status).test_client()
    answer = client.get("/v1/mqtt")
    assert answer.status_code == 503 and answer.get_json()["state"] == "starting"

    write_status(status, {"connected": True, "messages": {"in": 3, "out": 3, "errors": 0}})
    answer = client.get("/v1/mqtt")
    assert answer.status_code == 200 and answer.get_json()["state"] == "connected"
    assert answer.get_json()["messages"]["in"] == 3

    write_status(status, {"connected": False, "last_error": "cannot reach the broker at 127.0.0.1:1"})
    answer = client.get("/v1/mqtt")
    assert answer.status_code == 503 and answer.get_json()["state"] == "disconnected"

    body = json.loads(status.read_text())
    body.update(connected=True, updated_at=time.time() - STALE_AFTER - 1)
    status.write_text(json.dumps(body))
    answer = client.get("/v1/mqtt")
    assert answer.status_code == 503 and answer.get_json()["state"] == "stale"
