"""Several config sets in one app (`mlrm serve a b`): per-model routes, both predict paths,
a broken set answering 503 while the others serve, OIP per model, metrics by model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from mlrm.core.service_set import ServiceSet
from mlrm.rest import create_app
from mlrm.tools.datasets import breast_cancer
from tests.toolkit.files import configure, copy_config_set

Row = dict[str, Any]
PROBLEM = "application/problem+json"


@pytest.fixture
def folders(tmp_path: Path) -> list[Path]:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "service.yaml").write_text("name: broken\nalgoritm: random_forest_classifier\n")
    return [copy_config_set("pcb-inspection", tmp_path), copy_config_set("breast-cancer", tmp_path), broken]


@pytest.fixture
def app(folders: list[Path]) -> Flask:
    return create_app(ServiceSet(folders))


@pytest.fixture
def cancer_instance() -> Row:
    return {k: v for k, v in breast_cancer()[0].items() if k != "diagnosis"}


def flask_only(app: Flask) -> Client:
    """A client of the Flask app without the fast path in front of it."""
    return Client(app.wsgi_app.app)  # type: ignore[attr-defined]


def test_each_set_answers_at_its_own_route_on_both_paths(app: Flask, pcb_instance: Row, cancer_instance: Row) -> None:
    for client in (Client(app), flask_only(app)):
        pcb = client.post("/v1/models/pcb-inspection/predict", json={"instances": [pcb_instance]})
        cancer = client.post("/v1/models/breast-cancer/predict", json={"instances": [cancer_instance]})
        assert pcb.status_code == cancer.status_code == 200
        assert pcb.json["model"] == {"name": "pcb-inspection", "version": 1}  # type: ignore[index]
        assert cancer.json["model"] == {"name": "breast-cancer", "version": 1}  # type: ignore[index]
        bad = client.post("/v1/models/breast-cancer/predict", json={"instances": [pcb_instance]})
        assert bad.status_code == 422 and bad.headers["Content-Type"] == PROBLEM
        assert bad.json["errors"][0]["pointer"].startswith("/instances/0/")  # type: ignore[index]


def test_a_broken_set_answers_503_with_reason_and_fix_on_every_route(app: Flask, pcb_instance: Row) -> None:
    client = app.test_client()
    for method, path in [("POST", "/v1/models/broken/predict"), ("GET", "/v1/models/broken/config"),
                         ("GET", "/v2/models/broken/ready"), ("POST", "/v2/models/broken/infer")]:  # fmt: skip
        answer = client.open(path, method=method, json={"instances": [pcb_instance]})
        assert answer.status_code == 503, path
        assert answer.content_type == PROBLEM
        detail = answer.get_json()["detail"]
        assert "config set 'broken'" in detail and "unknown key 'algoritm'" in detail and "Fix: fix " in detail
    listed = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert [listed[n]["available"] for n in ("breast-cancer", "broken", "pcb-inspection")] == [True, False, True]
    assert listed["broken"]["fix"].startswith("fix ") and listed["pcb-inspection"]["version"] == 1
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503  # OIP: the server is ready when all its models are
    assert ready.get_json()["models"] == {"breast-cancer": True, "broken": False, "pcb-inspection": True}
    assert client.get("/v2/health/live").status_code == 200


def test_v1_routes_without_a_name_say_which_names_to_use(app: Flask, pcb_instance: Row) -> None:
    client = app.test_client()
    answer = client.post("/v1/predict", json={"instances": [pcb_instance]})
    assert answer.status_code == 404 and answer.content_type == PROBLEM
    assert "/v1/models/{name}/predict" in answer.get_json()["detail"]
    assert "breast-cancer, broken, pcb-inspection" in answer.get_json()["detail"]
    unknown = client.post("/v1/models/pcb-inspektion/predict", json={"instances": [pcb_instance]})
    assert unknown.status_code == 404 and "Did you mean 'pcb-inspection'" in unknown.get_json()["detail"]


def test_one_set_keeps_v1_predict_and_has_the_per_model_routes_too(tmp_path: Path, pcb_instance: Row) -> None:
    app = create_app(ServiceSet([copy_config_set("pcb-inspection", tmp_path)]))
    client = Client(app)
    old = client.post("/v1/predict", json={"instances": [pcb_instance]})
    new = client.post("/v1/models/pcb-inspection/predict", json={"instances": [pcb_instance]})
    assert old.status_code == new.status_code == 200 and old.json == new.json
    assert client.get("/v2/health/ready").json == {"ready": True}


def test_open_inference_protocol_per_model(app: Flask, pcb_instance: Row) -> None:
    client = app.test_client()
    meta = client.get("/v2/models/breast-cancer").get_json()
    assert meta["name"] == "breast-cancer" and meta["versions"] == ["1"]
    assert client.get("/v2/models/pcb-inspection/versions/1/ready").get_json() == {"name": "pcb-inspection",
                                                                                   "ready": True}  # fmt: skip
    inputs = [{"name": k, "shape": [1], "datatype": "FP64" if isinstance(v, float) else "INT64", "data": [v]}
              for k, v in pcb_instance.items()]  # fmt: skip
    answer = client.post("/v2/models/pcb-inspection/infer", json={"inputs": inputs})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["model_name"] == "pcb-inspection"
    assert client.post("/v2/models/breast-cancer/infer", json={"inputs": inputs}).status_code == 400


def test_config_reload_and_index_per_model(app: Flask) -> None:
    client = app.test_client()
    config = client.get("/v1/models/breast-cancer/config").get_json()
    assert config["config"]["name"] == "breast-cancer" and config["status"]["version"] == 1
    reload = client.post("/v1/models/pcb-inspection/admin/reload").get_json()
    assert reload == {"version": 1, "previous": 1, "changed": False, "error": None}
    index = client.get("/").get_json()
    assert [m["name"] for m in index["models"]] == ["breast-cancer", "broken", "pcb-inspection"]
    assert "/v1/models/pcb-inspection/predict" in index["endpoints"] and "/v1/predict" not in index["endpoints"]
    one = client.get("/v1/models/pcb-inspection").get_json()
    assert one["name"] == "pcb-inspection" and one["version"] == 1
    assert all("/pcb-inspection" in e for e in one["endpoints"])


def test_metrics_are_labelled_by_model(app: Flask, pcb_instance: Row, cancer_instance: Row) -> None:
    client = Client(app)
    for _ in range(2):
        client.post("/v1/models/pcb-inspection/predict", json={"instances": [pcb_instance]})
    client.post("/v1/models/breast-cancer/predict", json={"instances": [cancer_instance]})
    client.post("/v1/models/broken/predict", json={"instances": [cancer_instance]})
    client.post("/v1/models/no-such-set/predict", json={"instances": [cancer_instance]})
    text = client.get("/metrics").get_data(as_text=True)
    rule = 'endpoint="/v1/models/<name>/predict",method="POST"'
    assert f'mlrm_requests_total{{{rule},model="pcb-inspection",status="200"}} 2.0' in text
    assert f'mlrm_requests_total{{{rule},model="breast-cancer",status="200"}} 1.0' in text
    assert f'mlrm_requests_total{{{rule},model="broken",status="503"}} 1.0' in text
    assert f'mlrm_requests_total{{{rule},model="",status="404"}} 1.0' in text  # an unknown name is no label
    assert 'mlrm_prediction_rows_total{model="pcb-inspection"} 2.0' in text
    assert 'mlrm_model_ready{model="broken"} 0.0' in text and 'mlrm_model_version{model="breast-cancer"} 1.0' in text


def test_each_set_keeps_its_own_body_limit(tmp_path: Path, pcb_instance: Row) -> None:
    small = copy_config_set("pcb-inspection", tmp_path)
    configure(small, limits={"max_body_bytes": 2048})
    app = create_app(ServiceSet([small, copy_config_set("breast-cancer", tmp_path)]))
    body = {"instances": [pcb_instance] * 8}  # about 4 KB
    for client in (Client(app), flask_only(app)):
        answer = client.post("/v1/models/pcb-inspection/predict", json=body)
        assert answer.status_code == 413 and "2048 bytes (limits.max_body_bytes)" in answer.json["detail"]  # type: ignore[index]


def test_openapi_document_declares_each_set_by_name(app: Flask) -> None:
    paths = app.test_client().get("/openapi.json").get_json()["paths"]
    schema = paths["/v1/models/breast-cancer/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "mean_radius" in schema["schema"]["properties"]["instances"]["items"]["properties"]
    assert "/v2/models/pcb-inspection/infer" in paths and "/v1/models" in paths
    assert not any(p.startswith("/v1/models/broken") for p in paths)
    assert "/v1/predict" not in paths


def test_every_v1_route_of_a_set_is_also_at_its_name() -> None:
    """A route added for one set (/v1/X) must exist per model too (/v1/models/<name>/X), with the same scope."""
    from mlrm.rest.app import ROUTES

    table = {(rule, tuple(methods)): (handler, scope) for rule, methods, handler, scope in ROUTES}
    for (rule, methods), entry in table.items():
        if rule.startswith("/v1/") and not rule.startswith("/v1/models"):
            assert table.get((rule.replace("/v1/", "/v1/models/<name>/", 1), methods)) == entry, rule
