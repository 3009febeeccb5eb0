"""The Flask app through its test client: answers, problems, OIP, docs."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from mlrm.config import load_config_set
from mlrm.rest import create_app
from mlrm.training import trainer
from tests.toolkit.files import copy_config_set

Row = dict[str, Any]


def problem_of(
    client: FlaskClient, body: Any = None, *, data: Any = None, path: str = "/v1/predict", **kw: Any
) -> dict:
    answer = client.post(path, json=body, data=data, **kw) if data is None else client.post(path, data=data, **kw)
    assert 400 <= answer.status_code < 500, answer.json
    assert answer.content_type == "application/problem+json"
    problem: dict[str, Any] = answer.get_json()
    assert problem["status"] == answer.status_code
    return problem


def test_predict_answers_labels_probabilities_and_version(client: FlaskClient, pcb_instance: Row) -> None:
    body: dict[str, Any] = client.post("/v1/predict", json={"instances": [pcb_instance, pcb_instance]}).get_json()
    assert body["predictions"][0] in ("OK", "error", "pseudo-error")
    assert len(body["probabilities"]) == 2
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0)
    assert body["model"] == {"name": "pcb-inspection", "version": 1}


def test_defaults_fill_missing_optional_features(client: FlaskClient, pcb_instance: Row) -> None:
    row = {k: v for k, v in pcb_instance.items() if k not in ("board_thickness_mm", "separation_speed_mm_s")}
    assert client.post("/v1/predict", json={"instances": [row]}).status_code == 200


@pytest.mark.parametrize(
    ("change", "pointer", "detail"),
    [
        ({"volume_pct": "high"}, "/instances/0/volume_pct", "expected a number, got string 'high'"),
        ({"volume_pct": 999}, "/instances/0/volume_pct", "999 is out of range: expected 0 to 300"),
        ({"stencil_prints": 2.5}, "/instances/0/stencil_prints", "expected an integer, got 2.5"),
        ({"volume_pct": True}, "/instances/0/volume_pct", "expected a number, got boolean True"),
        ({"volume_pt": 1}, "/instances/0/volume_pt", "unknown feature 'volume_pt'. Did you mean 'volume_pct'?"),
        ({"volume_pct": None}, "/instances/0/volume_pct", "missing required feature 'volume_pct' (number)"),
    ],
)
def test_bad_values_are_named_by_json_pointer(
    client: FlaskClient, pcb_instance: Row, change: Row, pointer: str, detail: str
) -> None:
    problem = problem_of(client, {"instances": [{**pcb_instance, **change}]})
    assert problem["status"] == 422
    assert {"pointer": pointer, "detail": detail} in problem["errors"]


def test_missing_required_feature(client: FlaskClient, pcb_instance: Row) -> None:
    row = dict(pcb_instance)
    del row["height_um"]
    problem = problem_of(client, {"instances": [row]})
    assert problem["errors"] == [
        {"pointer": "/instances/0/height_um", "detail": "missing required feature 'height_um' (number)"}
    ]


def test_unknown_category_names_the_allowed_values(tmp_path: Any, pcb_rows: list[Row]) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path, learned=False)
    text = (
        (folder / "service.yaml")
        .read_text()
        .replace("inputs:\n", "inputs:\n  line: {type: category, values: [A, B], default: A}\n", 1)
    )
    (folder / "service.yaml").write_text(text)
    config = load_config_set(folder)
    trainer.train(config, [{**row, "line": "AB"[i % 2]} for i, row in enumerate(pcb_rows[:300])])
    client = create_app(config).test_client()
    problem = problem_of(client, {"instances": [{"line": "C"}]})
    assert {"pointer": "/instances/0/line", "detail": "unknown category 'C': expected one of A, B"} in problem["errors"]


def test_malformed_json_is_400(client: FlaskClient) -> None:
    problem = problem_of(client, data=b'{"instances": [', content_type="application/json")
    assert problem["status"] == 400 and "not valid JSON" in problem["detail"]


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    assert problem_of(client, data=b"volume=1", content_type="text/plain")["status"] == 415


def test_body_without_instances_says_the_shape(client: FlaskClient) -> None:
    assert 'expected {"instances"' in problem_of(client, {"rows": []})["detail"]
    assert problem_of(client, {"instances": {"a": 1}})["errors"][0]["pointer"] == "/instances"
    assert problem_of(client, {"instances": [3]})["errors"][0]["detail"].startswith("expected an object")


def test_too_many_rows_is_413(tmp_path: Any, pcb_instance: Row) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    (folder / "service.yaml").write_text((folder / "service.yaml").read_text() + "\nlimits: {max_instances: 2}\n")
    client = create_app(load_config_set(folder)).test_client()
    problem = problem_of(client, {"instances": [pcb_instance] * 3})
    assert problem["status"] == 413 and "limits.max_instances" in problem["detail"]


def test_body_too_large_is_413(tmp_path: Any, pcb_instance: Row) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    (folder / "service.yaml").write_text((folder / "service.yaml").read_text() + "\nlimits: {max_body_bytes: 2048}\n")
    client = create_app(load_config_set(folder)).test_client()
    problem = problem_of(client, {"instances": [pcb_instance] * 20})
    assert problem["status"] == 413 and "limits.max_body_bytes" in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [None, [], "x", {"instances": None}, {"instances": [[]]}, {"instances": [{"volume_pct": [1]}]},
     {"instances": [{"volume_pct": {"$gt": 1}}]}, {"instances": [{"volume_pct": float("nan")}]}],
)  # fmt: skip
def test_no_request_can_crash_the_worker(client: FlaskClient, pcb_instance: Row, body: Any) -> None:
    answer = client.post("/v1/predict", json=body)
    assert 400 <= answer.status_code < 500
    assert client.post("/v1/predict", json={"instances": [pcb_instance]}).status_code == 200


def test_untrained_set_is_not_ready_and_says_how_to_train(tmp_path: Any) -> None:
    client = create_app(copy_config_set("pcb-inspection", tmp_path, learned=False)).test_client()
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/live").json == {"live": True}
    answer = client.post("/v1/predict", json={"instances": [{}]})
    assert answer.status_code == 503 and "mlrm train" in answer.get_json()["detail"]


def test_tampered_artifact_is_refused(tmp_path: Any) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    artifact = folder / "learned" / "versions" / "0001" / "model.npz"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    client = create_app(folder).test_client()
    answer = client.post("/v1/predict", json={"instances": [{}]})
    assert answer.status_code == 503
    assert "sha256 does not match" in answer.get_json()["detail"]


def test_config_endpoint_shows_resolved_config_and_learned_metadata(client: FlaskClient) -> None:
    body: dict[str, Any] = client.get("/v1/config").get_json()
    assert body["config"]["training"]["holdout"] == 0.2
    assert body["learned"]["version"] == 1
    assert "f1_macro" in body["learned"]["metrics"]
    assert body["learned"]["artifacts"]["model.npz"]


def test_openapi_derives_the_request_schema_from_inputs(client: FlaskClient) -> None:
    doc: dict[str, Any] = client.get("/openapi.json").get_json()
    instance = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    item = instance["properties"]["instances"]["items"]
    assert item["properties"]["volume_pct"] == {
        "type": "number", "minimum": 0, "maximum": 300, "description": "Paste volume against the stencil aperture [%]"
    }  # fmt: skip
    assert "board_thickness_mm" not in item["required"] and "volume_pct" in item["required"]


class TestOpenInferenceProtocol:
    def test_server_and_model_metadata(self, client: FlaskClient) -> None:
        assert client.get("/v2").get_json()["name"] == "mlrm"
        assert client.get("/v2/health/ready").json == {"ready": True}
        meta: dict[str, Any] = client.get("/v2/models/pcb-inspection").get_json()
        assert meta["versions"] == ["1"]
        assert meta["inputs"][0] == {"name": "volume_pct", "datatype": "FP64", "shape": [-1]}
        assert client.get("/v2/models/pcb-inspection/versions/1/ready").get_json()["ready"] is True
        assert client.get("/v2/models/other").status_code == 404
        assert client.get("/v2/models/pcb-inspection/versions/7").status_code == 404

    def test_infer_with_one_tensor_per_feature(self, client: FlaskClient, pcb_instance: Row) -> None:
        inputs = [
            {"name": k, "shape": [2, 1], "datatype": "INT64" if k == "stencil_prints" else "FP64", "data": [v, v]}
            for k, v in pcb_instance.items()
        ]
        body: dict[str, Any] = client.post(
            "/v2/models/pcb-inspection/infer", json={"id": "r1", "inputs": inputs}
        ).get_json()
        assert body["id"] == "r1" and body["model_name"] == "pcb-inspection" and body["model_version"] == "1"
        predict, proba = body["outputs"]
        assert predict["name"] == "predict" and predict["datatype"] == "BYTES" and predict["shape"] == [2]
        assert proba["shape"] == [2, 3] and len(proba["data"]) == 6

    def test_infer_with_one_matrix_and_requested_outputs(self, client: FlaskClient, pcb_instance: Row) -> None:
        row = list(pcb_instance.values())
        request = {
            "inputs": [{"name": "input-0", "shape": [2, 16], "datatype": "FP64", "data": [row, row]}],
            "outputs": [{"name": "predict"}],
        }
        answer = client.post("/v2/models/pcb-inspection/versions/1/infer", json=request)
        assert answer.status_code == 200, answer.json
        assert [o["name"] for o in answer.get_json()["outputs"]] == ["predict"]
        v1: dict[str, Any] = client.post("/v1/predict", json={"instances": [pcb_instance]}).get_json()
        assert answer.get_json()["outputs"][0]["data"][0] == v1["predictions"][0]

    @pytest.mark.parametrize(
        ("request_body", "pointer"),
        [
            ({"inputs": []}, "/inputs"),
            ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}, "/inputs/0/data"),
            ({"inputs": [{"name": "volume_pct", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, "/inputs/0/data"),
            (
                {"inputs": [{"name": "volume_pct", "shape": [1], "datatype": "FP99", "data": [1.0]}]},
                "/inputs/0/datatype",
            ),
            ({"inputs": [{"name": "volum_pct", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, "/inputs/0/name"),
        ],
    )
    def test_bad_tensors_are_named(self, client: FlaskClient, request_body: Row, pointer: str) -> None:
        problem = problem_of(client, request_body, path="/v2/models/pcb-inspection/infer")
        assert problem["errors"][0]["pointer"] == pointer
        assert problem["error"]
