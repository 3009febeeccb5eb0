"""Requests whose cost is bounded, and the 500s that are now 4xx problems (issue 13).

Each case was a 500, or held a worker, before: schemathesis found the first.
Through the Flask app's test client, and, for a chunked body gunicorn cannot
parse, through the real `mlrm serve` and `mlrm training-service` on a socket.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from mlrm.config import ServiceConfig, load_config_set
from mlrm.rest import create_app
from tests.toolkit.files import configure, copy_config_set

Row = dict[str, Any]
INFER = "/v2/models/pcb-inspection/infer"


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.get_data()
    assert answer.content_type == "application/problem+json"
    body: dict[str, Any] = answer.get_json()
    assert body["status"] == status
    return body


def tensor(name: Any, datatype: Any, data: Any, shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": shape or [1], "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("bad", "pointer", "detail"),
    [
        ({"datatype": {"FP64": 1}}, "/inputs/0/datatype", "unknown datatype an object: expected one of BOOL, BYTES"),
        ({"datatype": ["FP64"]}, "/inputs/0/datatype", "unknown datatype an array: expected one of BOOL, BYTES"),
        ({"name": ["volume_pct"]}, "/inputs/0/name", "expected the input's name as a string, got an array"),
        ({"name": {"a": 1}}, "/inputs/0/name", "expected the input's name as a string, got an object"),
    ],
)
def test_v2_fields_of_the_wrong_json_type_are_400s(client: FlaskClient, bad: Row, pointer: str, detail: str) -> None:
    body = problem(client.post(INFER, json={"inputs": [{**tensor("volume_pct", "FP64", [1.0]), **bad}]}), 400)
    assert body["errors"][0]["pointer"] == pointer
    assert body["errors"][0]["detail"].startswith(detail)


def test_v2_data_nested_700_deep_is_a_400_not_a_recursion_error(client: FlaskClient) -> None:
    data: Any = 1.0
    for _ in range(700):
        data = [data]
    body = problem(client.post(INFER, json={"inputs": [tensor("volume_pct", "FP64", data)]}), 400)
    assert body["errors"] == [
        {
            "pointer": "/inputs/0/data",
            "detail": "data is nested more than 8 lists deep: send it flat, in row-major order",
        }
    ]


def test_v2_data_nested_as_its_shape_still_answers(client: FlaskClient, pcb_instance: Row) -> None:
    nested = [[list(pcb_instance.values())]]  # [1, 16] inside one more list: still within the bound
    answer = client.post(INFER, json={"inputs": [tensor("input-0", "FP64", nested, [1, 16])]})
    assert answer.status_code == 200, answer.get_json()


def test_no_instances_is_a_422_as_the_openapi_document_says(client: FlaskClient, config: ServiceConfig) -> None:
    assert (
        client.get("/openapi.json").get_json()["paths"]["/v1/predict"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]["properties"]["instances"]["minItems"]
        == 1
    )
    body = problem(client.post("/v1/predict", json={"instances": []}), 422)
    assert body["errors"] == [{"pointer": "/instances", "detail": "expected at least one instance"}]
    zero = [tensor(f.name, "FP64", [], [0]) for f in config.inputs]
    body = problem(client.post(INFER, json={"inputs": zero}), 400)
    assert body["errors"][0]["pointer"] == "/inputs/0/shape"
    assert body["errors"][0]["detail"].startswith("expected at least one row")


def test_finite_but_extreme_values_are_refused_at_the_door_with_the_input_named(tmp_path: Path) -> None:
    """Breast-cancer (logistic regression, standard scaling) answered 500 'Input X contains infinity'."""
    config_set = copy_config_set("breast-cancer", tmp_path)
    client = create_app(config_set).test_client()
    names = [f.name for f in load_config_set(config_set).inputs]
    body = problem(client.post("/v1/predict", json={"instances": [dict.fromkeys(names, 1e308)]}), 422)
    first = body["errors"][0]
    assert first["pointer"] == f"/instances/0/{names[0]}"
    assert first["detail"].startswith("1e+308 is out of range: expected 0 to 3.4028234663852886e+38 (no number beyond")
    doc = client.get("/openapi.json").get_json()
    items = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    declared = items["properties"]["instances"]["items"]["properties"][names[0]]
    assert (declared["minimum"], declared["maximum"]) == (0, 3.4028234663852886e38)  # the schema says so too
    # The bound itself reaches the model and is answered, under warnings as errors.
    at_bound = client.post("/v1/predict", json={"instances": [dict.fromkeys(names, 3.4028234663852886e38)]})
    assert at_bound.status_code == 200, at_bound.get_json()


def test_a_forest_never_sees_a_value_float32_cannot_hold(client: FlaskClient, pcb_instance: Row) -> None:
    """stencil_prints: 1e300 overflowed the compiled forest's float32 cast: a RuntimeWarning, so a 500."""
    body = problem(client.post("/v1/predict", json={"instances": [{**pcb_instance, "stencil_prints": 1e300}]}), 422)
    assert body["errors"][0]["pointer"] == "/instances/0/stencil_prints"
    assert "out of range" in body["errors"][0]["detail"]
    binary = client.post(INFER, json={"inputs": [tensor(k, "FP64", [v]) for k, v in
                                                 {**pcb_instance, "stencil_prints": 1e300}.items()]})  # fmt: skip
    assert problem(binary, 422)["errors"][0]["pointer"] == "/instances/0/stencil_prints"


def test_90000_unknown_keys_cost_one_problem(tmp_path: Path, pcb_instance: Row) -> None:
    config_set = copy_config_set("pcb-inspection", tmp_path)
    configure(config_set, limits={"max_body_bytes": 4 * 1024 * 1024})
    client = create_app(config_set).test_client()
    row = {**pcb_instance, **{f"k{i}": 1 for i in range(90_000)}}
    body = problem(client.post("/v1/predict", json={"instances": [row, row]}), 422)
    assert body["errors"] == [
        {"pointer": f"/instances/{i}/k0", "detail": "unknown feature 'k0' (and 89999 more unknown features)."}
        for i in (0, 1)
    ]


def test_problems_per_request_are_capped(client: FlaskClient) -> None:
    body = problem(client.post("/v1/predict", json={"instances": [{"x": "y"}] * 500}), 422)
    assert len(body["errors"]) == 20


def test_long_or_deep_values_are_not_echoed_whole(client: FlaskClient, pcb_instance: Row) -> None:
    deep: Any = "x"
    for _ in range(900):
        deep = [deep]
    body = problem(client.post("/v1/predict", json={"instances": [{**pcb_instance, "volume_pct": deep}]}), 422)
    assert body["errors"][0]["detail"] == "expected a number, got array"
    long = problem(client.post("/v1/predict", json={"instances": [{**pcb_instance, "volume_pct": "7" * 100_000}]}), 422)
    assert long["errors"][0]["detail"].endswith("... (100000 characters)")


def post_chunked(url: str, path: str) -> tuple[str, bytes]:
    """POST a chunked body whose chunk-size line is not hexadecimal; (status line, body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode()
        )
        reply = b""
        while chunk := s.recv(65536):  # gunicorn closes the connection after an error
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/problem+json" in head, head
    return head.split(b"\r\n")[0].decode(), payload


def test_a_bad_chunk_size_is_a_400_from_the_ml_service(serve: Any, config_set: Path) -> None:
    url, process = serve(config_set)
    for path in ("/v1/predict", INFER, "/v1/feedback"):
        status, payload = post_chunked(url, path)
        assert status == "HTTP/1.1 400 BAD REQUEST", (path, payload)
        assert b"Invalid chunk size" in payload and b"hexadecimal size line" in payload
    assert "unhandled error" not in process.output()


def test_a_bad_chunk_size_is_a_400_from_the_training_service(training_service: Any, root: Path) -> None:
    url, process = training_service(root)
    status, payload = post_chunked(url, "/v1/services/breast-cancer/samples")
    assert status == "HTTP/1.1 400 BAD REQUEST", payload
    assert b"Invalid chunk size" in payload
    assert "unhandled error" not in process.output()
