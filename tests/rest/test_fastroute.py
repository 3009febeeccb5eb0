"""The fast predict path answers exactly as the Flask route does, errors
included, and never runs a request twice.

Each case goes through both real paths: the PredictRoute middleware, and the
Flask app behind it with the middleware bypassed (`route.app`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from mlrm.rest import create_app
from mlrm.rest.fastroute import PredictRoute
from mlrm.tools.datasets import worker_activity
from tests.toolkit.files import copy_config_set

Row = dict[str, Any]
JSON = "application/json"


def flask_only(app: Flask) -> Client:
    """A client straight to Flask, past the fast path."""
    route = app.wsgi_app
    assert isinstance(route, PredictRoute)
    return Client(route.app)


def post(client: Client, data: bytes, content_type: str = JSON) -> TestResponse:
    return client.post("/v1/predict", data=data, headers={"Content-Type": content_type} if content_type else {})


def seen(response: TestResponse) -> tuple[int, str | None, Any]:
    return response.status_code, response.content_type, response.get_json(force=True)


def requests(row: Row) -> list[tuple[bytes, str]]:
    one = orjson.dumps({"instances": [row]})
    return [
        (one, JSON),
        (one, "application/json; charset=utf-8"),
        (orjson.dumps({"instances": [row, {**row, "volume_pct": 40.5}, row]}), JSON),
        (orjson.dumps({"instances": []}), JSON),
        (orjson.dumps({"instances": [{**row, "volume_pct": "high"}]}), JSON),
        (orjson.dumps({"instances": [{**row, "volume_pt": 1}]}), JSON),
        (orjson.dumps({"instances": [{**row, "volume_pct": 301}]}), JSON),
        (orjson.dumps({"instances": "all"}), JSON),
        (orjson.dumps({"instances": [row], "extra": 1}), JSON),
        (orjson.dumps({"rows": [row]}), JSON),
        (orjson.dumps([row]), JSON),
        (b'{"instances": [', JSON),
        (b"", JSON),
        (b'{"instances": [{"volume_pct": 1e999}]}', JSON),
        (one, "text/csv"),
        (one, ""),
        (one, "application/vnd.mlrm+json"),
        (orjson.dumps({"instances": [row] * 2000}), JSON),  # over limits.max_instances
        (b" " * 2_000_000 + one, JSON),  # over limits.max_body_bytes
    ]


@pytest.mark.parametrize("case", range(19))
def test_answers_equal_the_flask_route(app: Flask, pcb_instance: Row, case: int) -> None:
    data, content_type = requests(pcb_instance)[case]
    fast = post(Client(app), data, content_type)
    assert seen(fast) == seen(post(flask_only(app), data, content_type))
    assert fast.content_type == (JSON if fast.status_code == 200 else "application/problem+json")


@pytest.mark.parametrize("spoil", ["untrained", "corrupt model file"])
def test_not_ready_answers_equal_the_flask_route(tmp_path: Path, pcb_instance: Row, spoil: str) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path, learned=spoil != "untrained")
    if spoil == "corrupt model file":
        (folder / "learned" / "versions" / "0001" / "model.npz").write_bytes(b"not what was trained")
    app = create_app(folder)
    data = orjson.dumps({"instances": [pcb_instance]})
    fast = post(Client(app), data)
    assert seen(fast) == seen(post(flask_only(app), data))
    assert fast.status_code == 503 and "no trained model yet" in fast.get_json(force=True)["detail"]


def imu_records(count: int) -> list[Row]:
    rows = [r for r in worker_activity(rows=2 * count + 50, seed=5) if r["worker"] == "worker-1"]
    return [{k: v for k, v in r.items() if k != "activity"} for r in rows[:count]]


def windowed_app(tmp_path: Path, name: str) -> Flask:
    """A copy of worker-activity (100-record windows) whose buffer holds one stream at most."""
    folder = copy_config_set("worker-activity", tmp_path / name)
    yaml_file = folder / "service.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("  label: last", "  label: last\n  buffer: {max_streams: 1}"))
    return create_app(folder)


def windowed_requests() -> list[bytes]:
    """Records to buffer, a full window, then every kind of error the window path raises."""
    records = imu_records(101)
    window = [{k: v for k, v in r.items() if k != "worker"} for r in records[:100]]
    late = {**records[0], "t": -1.0}
    return [
        orjson.dumps({"instances": records[:60]}),  # pending
        orjson.dumps({"instances": records[60:100]}),  # the last one fills the window
        orjson.dumps({"instances": [records[100]]}),  # pending again until `step` more
        orjson.dumps({"instances": [late]}),  # 422: older than the whole buffered window
        orjson.dumps({"instances": [{**records[0], "worker": "worker-2"}]}),  # 429: one stream at most
        orjson.dumps({"instances": [{**records[0], "acc_x": "high"}]}),  # 422 before the buffer
        orjson.dumps({"instances": [{"window": window[:99]}]}),  # 422: a window too short
        orjson.dumps({"instances": [{"window": window}]}),  # a ready window
    ]


@pytest.mark.torch
def test_windowed_answers_equal_the_flask_route(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    # One copy per path: the buffer is state, and each path must see the same history.
    fast, flask = Client(windowed_app(tmp_path, "fast")), flask_only(windowed_app(tmp_path, "flask"))
    statuses = []
    for data in windowed_requests():
        answer = seen(post(fast, data))
        assert answer == seen(post(flask, data))
        statuses.append(answer[0])
    assert statuses == [200, 200, 200, 422, 429, 422, 422, 200]


@pytest.mark.torch
def test_buffers_and_counts_each_request_once(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    app = windowed_app(tmp_path, "fast")
    client = Client(app)
    needed = [
        post(client, data).get_json(force=True).get("windows", [{}])[-1].get("needed") for data in windowed_requests()
    ]
    # 60 records leave 40 to fill the window; the 101st waits for `step` (25) more: each record was buffered once.
    assert needed[:3] == [40, 0, 24]
    text = client.get("/metrics").get_data(as_text=True)
    counts = {
        'mlrm_requests_total{endpoint="/v1/predict",method="POST",model="worker-activity",status="200"}': 4.0,
        'mlrm_requests_total{endpoint="/v1/predict",method="POST",model="worker-activity",status="422"}': 3.0,
        'mlrm_requests_total{endpoint="/v1/predict",method="POST",model="worker-activity",status="429"}': 1.0,
        'mlrm_request_duration_seconds_count{endpoint="/v1/predict",model="worker-activity"}': 8.0,
        'mlrm_prediction_rows_total{model="worker-activity"}': 2.0,  # the full window and the ready one
    }
    for sample, value in counts.items():
        assert f"{sample} {value}" in text


def test_counts_each_request_once_in_metrics(app: Flask, pcb_instance: Row) -> None:
    client = app.test_client()
    for _ in range(3):
        assert client.post("/v1/predict", json={"instances": [pcb_instance]}).status_code == 200
    assert client.post("/v1/predict", json={"instances": [{}]}).status_code == 422
    assert client.post("/v1/predict", json={"instances": [pcb_instance] * 2000}).status_code == 413
    assert client.post("/v1/predict", data="{", content_type=JSON).status_code == 400
    assert client.post("/v1/predict", data="a,b", content_type="text/csv").status_code == 415
    text = client.get("/metrics").get_data(as_text=True)
    for status, count in {"200": 3, "400": 1, "413": 1, "415": 1, "422": 1}.items():
        sample = f'mlrm_requests_total{{endpoint="/v1/predict",method="POST",model="pcb-inspection",status="{status}"}}'
        assert f"{sample} {count}.0" in text
    assert 'mlrm_request_duration_seconds_count{endpoint="/v1/predict",model="pcb-inspection"} 7.0' in text
    assert 'mlrm_prediction_rows_total{model="pcb-inspection"} 3.0' in text


def test_flask_sees_only_requests_the_fast_path_has_not_begun(app: Flask, pcb_instance: Row) -> None:
    calls: list[str] = []
    endpoint = "predict:/v1/predict"
    view = app.view_functions[endpoint]

    def counted_view() -> Any:
        calls.append("flask")
        return view()

    app.view_functions[endpoint] = counted_view
    client = app.test_client()
    assert client.post("/v1/predict", json={"instances": [pcb_instance]}).status_code == 200
    assert client.post("/v1/predict", json={"instances": [{}]}).status_code == 422
    assert client.post("/v1/predict", data="{", content_type=JSON).status_code == 400
    assert calls == []
    assert client.post("/v1/predict", data="a,b", content_type="text/csv").status_code == 415
    assert calls == ["flask"]


def test_both_paths_report_compute_time_in_server_timing(app: Flask, pcb_instance: Row) -> None:
    """`mlrm bench` splits a round trip into compute and transport with this header."""
    data = orjson.dumps({"instances": [pcb_instance]})
    for client in (Client(app), flask_only(app)):
        header = post(client, data).headers["Server-Timing"]
        metrics = dict(part.strip().split(";dur=") for part in header.split(","))
        assert set(metrics) == {"compute", "app"}
        assert 0 < float(metrics["compute"]) <= float(metrics["app"])
