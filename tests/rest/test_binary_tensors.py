"""The binary tensor data extension: bodies read and written, every bad one named."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from mlrm.errors import RequestError
from mlrm.rest import create_app
from mlrm.rest.binary_tensors import HEADER, read_request, write_reply
from tests.toolkit.files import copy_config_set

Tensor = dict[str, Any]


def binary(name: str, datatype: str, shape: list[int], raw: bytes, size: int | None = None) -> Tensor:
    size = len(raw) if size is None else size
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}


def body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, str]:
    """A request body as tritonclient builds it, and its Inference-Header-Content-Length."""
    head = orjson.dumps(header)
    return head + b"".join(chunks), str(len(head))


def strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


def failure(data: bytes, **kw: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        read_request(data, **kw)
    return caught.value


def test_binary_inputs_get_their_data_in_order_beside_json_ones() -> None:
    floats = np.array([1.5, -2.25], dtype="<f4").tobytes()
    inputs = [
        binary("a", "FP32", [2, 1], floats),
        {"name": "b", "datatype": "INT64", "shape": [2], "data": [3, 4]},
        binary("c", "BYTES", [2], strings(b"x", "é".encode())),
        binary("d", "BOOL", [2], b"\x01\x00"),
    ]
    data, length = body({"inputs": inputs}, floats, strings(b"x", "é".encode()), b"\x01\x00")
    read = read_request(data, mimetype="application/octet-stream", header_length=length)
    assert [t["data"] for t in read["inputs"]] == [[1.5, -2.25], [3, 4], ["x", "é"], [True, False]]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_inflated_before_the_header_is_split(encoding: str) -> None:
    raw = np.array([7.0], dtype="<f8").tobytes()
    data, length = body({"inputs": [binary("a", "FP64", [1], raw)]}, raw)
    packed = gzip.compress(data) if encoding == "gzip" else zlib.compress(data)
    read = read_request(packed, header_length=length, encoding=encoding, limit=len(data))
    assert read["inputs"][0]["data"] == [7.0]


F8 = np.array([1.0, 2.0], dtype="<f8").tobytes()


@pytest.mark.parametrize(
    ("header", "tail", "pointer", "detail"),
    [
        (
            {"inputs": [binary("x", "FP64", [2], F8, size=24)]}, F8, "/inputs/0/parameters/binary_data_size",
            "input 'x' needs 24 bytes but only 16 of the 16 bytes after the JSON header are left",
        ),
        (
            {"inputs": [binary("x", "FP64", [2], F8, size=12)]}, F8[:12], "/inputs/0/parameters/binary_data_size",
            "input 'x': 12 bytes is not a whole number of FP64 elements (8 bytes each)",
        ),
        (
            {"inputs": [binary("x", "FP64", [3], F8)]}, F8, "/inputs/0/shape",
            "input 'x': shape [3] holds 3 elements but its 16 bytes of binary data hold 2",
        ),
        (
            {"inputs": [binary("s", "BYTES", [1], b"\x05\x00")]}, b"\x05\x00", "/inputs/0/parameters/binary_data_size",
            "input 's': element 0 has a truncated 4-byte length",
        ),
        (
            {"inputs": [binary("s", "BYTES", [1], strings(b"abc")[:-1])]}, strings(b"abc")[:-1],
            "/inputs/0/parameters/binary_data_size", "input 's': element 0 claims 3 bytes but only 2 are left",
        ),
        (
            {"inputs": [binary("s", "BYTES", [1], strings(b"\xff"))]}, strings(b"\xff"), "/inputs/0/data",
            "input 's': element 0 is not valid UTF-8 text",
        ),
        (
            {"inputs": [binary("b", "BOOL", [1], b"\x02")]}, b"\x02", "/inputs/0/parameters/binary_data_size",
            "input 'b': a BOOL element must be the byte 0 or 1",
        ),
        (
            {"inputs": [binary("x", "BF16", [1], b"\x00\x00")]}, b"\x00\x00", "/inputs/0/datatype",
            "input 'x': datatype 'BF16' cannot be sent as binary data",
        ),
        (
            {"inputs": [{**binary("x", "FP64", [1], F8[:8]), "data": [1.0]}]}, F8[:8], "/inputs/0/data",
            "input 'x' has both data and binary_data_size: send one or the other",
        ),
        (
            {"inputs": [binary("x", "FP64", [1], b"", size="8")]}, F8[:8],  # type: ignore[arg-type]
            "/inputs/0/parameters/binary_data_size", "input 'x': expected a byte count, got '8'",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "parameters": {"shared_memory_region": "r"}}]},
            b"", "/inputs/0/parameters/shared_memory_region", "shared memory is not supported",
        ),
        (
            {"inputs": [], "outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}]}, b"",
            "/outputs/0/parameters/binary_data", "expected true or false, got 'yes'",
        ),
        (
            {"inputs": [], "outputs": [{"name": "predict", "parameters": {"classification": 2}}]}, b"",
            "/outputs/0/parameters/classification", "output 'predict': the classification extension is not supported",
        ),
        (
            {"inputs": [], "parameters": {"binary_data_output": 1}}, b"", "/parameters/binary_data_output",
            "expected true or false, got 1",
        ),
    ],
)  # fmt: skip
def test_bad_binary_inputs_are_named(header: dict[str, Any], tail: bytes, pointer: str, detail: str) -> None:
    data, length = body(header, tail)
    error = failure(data, header_length=length)
    assert error.status == 400
    assert error.errors[0].pointer == pointer
    assert error.errors[0].detail.startswith(detail)


@pytest.mark.parametrize(
    ("length", "extra", "detail"),
    [
        ("999", b"", f"{HEADER}: '999' must be the byte length of the JSON header"),
        ("ten", b"", f"{HEADER}: 'ten' must be the byte length"),
        (
            None,
            b"\x00\x01",
            "2 bytes after the JSON header belong to no input: the binary_data_size values add up to 16",
        ),
    ],
)
def test_header_lengths_and_sizes_that_do_not_add_up(length: str | None, extra: bytes, detail: str) -> None:
    data, own = body({"inputs": [binary("x", "FP64", [2], F8)]}, F8, extra)
    error = failure(data, header_length=length or own)
    assert error.status == 400 and error.detail.startswith(detail)


def test_binary_data_without_the_header_says_what_is_missing() -> None:
    data, _length = body({"inputs": [binary("x", "FP64", [2], F8)]}, F8)
    error = failure(data + b"\xff")
    assert error.kind == "malformed-json"
    assert error.errors[0].detail.endswith(f"binary tensor data needs the {HEADER} header")


@pytest.mark.parametrize(
    ("kw", "status", "detail"),
    [
        ({"mimetype": "text/plain"}, 415, "send Content-Type: application/json (or application/octet-stream"),
        ({"encoding": "br"}, 415, "Content-Encoding: br is not supported: send gzip, deflate"),
        ({"encoding": "gzip"}, 400, "the body is not valid gzip data"),
        ({"encoding": "deflate", "data": zlib.compress(b'{"inputs": []}')[:-3]}, 400, "the deflate body is truncated"),
        ({"encoding": "gzip", "data": gzip.compress(b" " * 5000), "limit": 4096}, 413, "request body too large once"),
    ],
)
def test_media_types_and_encodings(kw: dict[str, Any], status: int, detail: str) -> None:
    error = failure(kw.pop("data", b'{"inputs": []}'), **kw)
    assert error.status == status and error.detail.startswith(detail)


def reply(*outputs: Tensor) -> dict[str, Any]:
    return {"model_name": "m", "model_version": "1", "outputs": list(outputs)}


def test_outputs_asked_for_as_binary_follow_the_json_header() -> None:
    yes = {"binary_data": True}
    request = {"outputs": [{"name": "p", "parameters": yes}, {"name": "q"}, {"name": "a", "parameters": yes}]}
    answer = reply(
        {"name": "p", "datatype": "BYTES", "shape": [2], "data": ["OK", 1]},
        {"name": "q", "datatype": "FP64", "shape": [1], "data": [0.5]},
        {"name": "a", "datatype": "BOOL", "shape": [2], "data": [True, False], "parameters": {"k": "v"}},
    )
    payload, length = write_reply(answer, request)
    assert length is not None
    header = orjson.loads(payload[:length])
    p, q, a = header["outputs"]
    assert p["parameters"] == {"binary_data_size": 11} and "data" not in p
    assert q["data"] == [0.5] and "parameters" not in q
    assert a["parameters"] == {"k": "v", "binary_data_size": 2}
    assert payload[length:] == strings(b"OK", b"1") + b"\x01\x00"


def test_request_level_binary_output_and_nulls_that_stay_json() -> None:
    answer = reply(
        {"name": "predict", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]},
        {"name": "score", "datatype": "FP64", "shape": [2], "data": [None, 0.5]},
    )
    payload, length = write_reply(answer, {"parameters": {"binary_data_output": True}})
    assert length is not None
    predict, score = orjson.loads(payload[:length])["outputs"]
    assert predict["parameters"]["binary_data_size"] == 16 and score["data"] == [None, 0.5]
    assert np.frombuffer(payload[length:], "<f8").tolist() == [1.0, 2.0]
    assert write_reply(reply({"name": "q", "datatype": "FP64", "shape": [1], "data": [1.0]}), {})[1] is None


def test_flask_answers_binary_and_problems_within_the_body_limit(tmp_path: Path, pcb_instance: dict[str, Any]) -> None:
    config_set = copy_config_set("pcb-inspection", tmp_path)
    with open(config_set / "service.yaml", "a") as f:
        f.write("\nlimits:\n  max_body_bytes: 2048\n")
    client = create_app(config_set).test_client()
    path = "/v2/models/pcb-inspection/infer"
    matrix = np.array([list(pcb_instance.values())], dtype="<f8").tobytes()
    data, length = body(
        {"inputs": [binary("input-0", "FP64", [1, 16], matrix)], "parameters": {"binary_data_output": True}}, matrix
    )
    answer = client.post(path, data=data, headers={HEADER: length}, content_type="application/octet-stream")
    assert answer.status_code == 200 and answer.content_type == "application/octet-stream"
    header = orjson.loads(answer.data[: int(answer.headers[HEADER])])
    predict, proba = header["outputs"]
    assert predict["datatype"] == "BYTES" and proba["parameters"] == {
        "labels": ["OK", "error", "pseudo-error"],
        "binary_data_size": 24,
    }

    bad = client.post(path, data=data, headers={HEADER: str(len(data) + 1)})
    assert bad.status_code == 400 and bad.content_type == "application/problem+json"
    assert HEADER in bad.get_json()["error"]
    for payload, headers in [(data * 40, {HEADER: length}), (gzip.compress(data * 40), {"Content-Encoding": "gzip"})]:
        big = client.post(path, data=payload, headers=headers)
        assert big.status_code == 413 and big.content_type == "application/problem+json"
        assert "limits.max_body_bytes" in big.get_json()["detail"]
