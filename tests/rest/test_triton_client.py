"""The real `tritonclient[http]` against a real `mlrm serve`, binary tensor data and plain JSON.

Every answer over /v2/models/NAME/infer must equal /v1/predict's for the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from mlrm.config import ServiceConfig, load_config_set
from mlrm.tools.datasets import GENERATORS
from tests.toolkit.files import copy_config_set

Row = dict[str, Any]
Serve = Callable[..., tuple[str, Any]]
Clients = Callable[[str], triton.InferenceServerClient]
NUMPY = {"number": np.float64, "integer": np.int64, "boolean": np.bool_}
TRITON = {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}


def started(serve: Serve, tmp_path: Path, name: str) -> tuple[str, ServiceConfig]:
    config_set = copy_config_set(name, tmp_path)
    url, _process = serve(config_set)
    return url, load_config_set(config_set)


def instances(config: ServiceConfig, n: int) -> list[Row]:
    names = [f.name for f in config.inputs]
    return [{k: row[k] for k in names} for row in GENERATORS[config.name](rows=n, seed=3)]


def per_feature(config: ServiceConfig, rows: list[Row], binary: bool) -> list[triton.InferInput]:
    tensors = []
    for field in config.inputs:
        tensor = triton.InferInput(field.name, [len(rows), 1], TRITON[field.type])
        column: np.ndarray = np.array([[row[field.name]] for row in rows], dtype=NUMPY[field.type])
        tensors.append(tensor.set_data_from_numpy(column, binary_data=binary))
    return tensors


def v1(url: str, rows: list[Row]) -> dict[str, Any]:
    answer = requests.post(f"{url}/v1/predict", json={"instances": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def text(labels: np.ndarray) -> list[str]:
    """BYTES come back as bytes from binary data and as str from JSON."""
    return [x.decode() if isinstance(x, bytes) else str(x) for x in labels]


def sent_binary(result: triton.InferResult, name: str) -> bool:
    output = result.get_output(name)
    return "binary_data_size" in output.get("parameters", {}) and "data" not in output


@pytest.fixture
def client_of() -> Iterator[Clients]:
    """Clients for base URLs, closed at teardown (tritonclient wants host:port, no scheme)."""
    clients: list[triton.InferenceServerClient] = []

    def make(url: str) -> triton.InferenceServerClient:
        clients.append(triton.InferenceServerClient(url.removeprefix("http://")))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_classifier_per_feature_and_matrix_in_both_modes(serve: Serve, tmp_path: Path, client_of: Clients) -> None:
    url, config = started(serve, tmp_path, "pcb-inspection")
    client = client_of(url)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    rows = instances(config, 5)
    expected = v1(url, rows)
    labels = [str(x) for x in config.labels]
    probabilities = np.array([[p[label] for label in labels] for p in expected["probabilities"]])

    for binary in (True, False):
        outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("predict", "predict_proba")]
        result = client.infer("pcb-inspection", per_feature(config, rows, binary), outputs=outputs, request_id="r1")
        assert text(result.as_numpy("predict")) == expected["predictions"]
        assert np.array_equal(result.as_numpy("predict_proba"), probabilities)
        assert sent_binary(result, "predict") is binary and sent_binary(result, "predict_proba") is binary
        assert result.get_response()["id"] == "r1"

    # No outputs named: tritonclient asks for all of them as binary data (binary_data_output).
    result = client.infer("pcb-inspection", per_feature(config, rows, True), model_version="1")
    assert sent_binary(result, "predict") and text(result.as_numpy("predict")) == expected["predictions"]

    # One [N, F] tensor, FP32 as a client would send it; /v1 gets the same float32 values.
    matrix = np.array([list(row.values()) for row in rows], dtype=np.float32)
    rounded = [
        {f.name: int(x) if f.type == "integer" else x for f, x in zip(config.inputs, values)}
        for values in matrix.tolist()
    ]
    expected = v1(url, rounded)
    for binary in (True, False):
        tensor = triton.InferInput("input-0", list(matrix.shape), "FP32").set_data_from_numpy(
            matrix, binary_data=binary
        )
        result = client.infer("pcb-inspection", [tensor], outputs=[triton.InferRequestedOutput("predict", binary)])
        assert text(result.as_numpy("predict")) == expected["predictions"]
        assert result.get_output("predict_proba") is None


def test_regressor_with_bool_inputs_compressed_requests_and_errors(
    serve: Serve, tmp_path: Path, client_of: Clients
) -> None:
    url, config = started(serve, tmp_path, "air-quality")
    client = client_of(url)
    rows = instances(config, 4)
    expected = np.array(v1(url, rows)["predictions"])

    for binary in (True, False):
        for compression in (None, "gzip", "deflate"):
            result = client.infer(
                "air-quality", per_feature(config, rows, binary),
                outputs=[triton.InferRequestedOutput("predict", binary_data=binary)],
                request_compression_algorithm=compression, response_compression_algorithm=compression,
            )  # fmt: skip
            assert np.array_equal(result.as_numpy("predict"), expected)
            assert sent_binary(result, "predict") is binary

    # A shape that disagrees with the binary data is refused, naming the input.
    tensors = per_feature(config, rows, True)
    tensors[0].set_shape([len(rows) + 1, 1])
    with pytest.raises(InferenceServerException) as caught:
        client.infer("air-quality", tensors)
    assert caught.value.status() == "400"
    assert "input 'co2_ppm': shape [5, 1] holds 5 elements" in caught.value.message()
