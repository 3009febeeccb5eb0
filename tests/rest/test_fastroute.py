"""The fast predict path answers exactly as the Flask route does, errors included."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from flask import Flask
from werkzeug.test import Client

from mlrm.rest.fastroute import PredictRoute

Row = dict[str, Any]


def both(app: Flask) -> tuple[Client, Client]:
    """A client through the fast path, and one straight to Flask."""
    route = app.wsgi_app
    assert isinstance(route, PredictRoute)
    return Client(app), Client(route.app)


def requests(row: Row) -> list[tuple[bytes, str]]:
    json = "application/json"
    one = orjson.dumps({"instances": [row]})
    return [
        (one, json),
        (one, "application/json; charset=utf-8"),
        (orjson.dumps({"instances": [row, {**row, "volume_pct": 40.5}, row]}), json),
        (orjson.dumps({"instances": []}), json),
        (orjson.dumps({"instances": [{**row, "volume_pct": "high"}]}), json),
        (orjson.dumps({"instances": [{**row, "volume_pt": 1}]}), json),
        (orjson.dumps({"instances": [row], "extra": 1}), json),
        (orjson.dumps({"rows": [row]}), json),
        (orjson.dumps([row]), json),
        (b'{"instances": [', json),
        (one, "text/csv"),
        (one, ""),
        (orjson.dumps({"instances": [row] * 2000}), json),  # over limits.max_instances
        (b" " * 2_000_000 + one, json),  # over limits.max_body_bytes
    ]


@pytest.mark.parametrize("case", range(14))
def test_answers_equal_the_flask_route(app: Flask, pcb_instance: Row, case: int) -> None:
    fast, flask = both(app)
    data, content_type = requests(pcb_instance)[case]
    headers = {"Content-Type": content_type} if content_type else {}
    a = fast.post("/v1/predict", data=data, headers=headers)
    b = flask.post("/v1/predict", data=data, headers=headers)
    assert (a.status_code, a.content_type, a.get_json(force=True)) == (
        b.status_code,
        b.content_type,
        b.get_json(force=True),
    )


def test_counts_each_request_once_in_metrics(app: Flask, pcb_instance: Row) -> None:
    client = app.test_client()
    for _ in range(3):
        assert client.post("/v1/predict", json={"instances": [pcb_instance]}).status_code == 200
    assert client.post("/v1/predict", json={"instances": [{}]}).status_code == 422
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mlrm_requests_total{endpoint="/v1/predict",method="POST",status="200"} 3.0' in text
    assert 'mlrm_requests_total{endpoint="/v1/predict",method="POST",status="422"} 1.0' in text
    assert 'mlrm_request_duration_seconds_count{endpoint="/v1/predict"} 4.0' in text
    assert 'mlrm_prediction_rows_total{model="pcb-inspection"} 3.0' in text


def test_a_well_formed_request_never_reaches_flask(app: Flask, pcb_instance: Row) -> None:
    calls: list[str] = []
    endpoint = "predict:/v1/predict"
    view = app.view_functions[endpoint]

    def counted_view() -> Any:
        calls.append("flask")
        return view()

    app.view_functions[endpoint] = counted_view
    client = app.test_client()
    assert client.post("/v1/predict", json={"instances": [pcb_instance]}).status_code == 200
    assert calls == []
    assert client.post("/v1/predict", json={"instances": [{}]}).status_code == 422
    assert calls == ["flask"]
