"""Open Inference Protocol (KServe V2) tensors <-> mlrm rows and answers.

Two request shapes are accepted: one tensor per feature (named after it, shape
[N] or [N, 1]), or a single numeric tensor of shape [N, F] with the features
in service.yaml order (how MLServer's scikit-learn runtime is called).
Binary tensor data arrives here already in this JSON form: mlrm.rest.binary_tensors
reads it, and writes the outputs asked for as binary.
"""

from __future__ import annotations

from typing import Any

from mlrm.config.service_config import ServiceConfig
from mlrm.core.answer import Answer
from mlrm.errors import FieldError, RequestError, did_you_mean

DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "category": "BYTES"}
NUMERIC = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
KNOWN = NUMERIC | {"BYTES"}
# Lists nested in a tensor's data: far more than the shapes accepted here need ([N] or [N, F]).
MAX_DEPTH = 8


def _bad(pointer: str, detail: str) -> RequestError:
    return RequestError("Invalid inference request", 400, errors=[FieldError(pointer, detail)])


def _flat(data: Any, at: str, depth: int = 0) -> list[Any]:
    """Tensor data, flat or nested, in row-major order.

    The depth is checked before recursing, so data nested hundreds of levels
    deep is a 400, not a RecursionError.
    """
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        if depth >= MAX_DEPTH:
            raise _bad(at, f"data is nested more than {MAX_DEPTH} lists deep: send it flat, in row-major order")
        return [x for row in data for x in _flat(row, at, depth + 1)]
    return data


def _tensor(tensor: Any, i: int) -> tuple[str, list[int], str, list[Any]]:
    at = f"/inputs/{i}"
    if not isinstance(tensor, dict):
        raise _bad(at, "expected a tensor object with name, shape, datatype and data")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise _bad(f"{at}/{key}", f"missing '{key}'")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if not isinstance(name, str):
        raise _bad(f"{at}/name", f"expected the input's name as a string, got {_kind(name)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _bad(f"{at}/shape", "expected a list of non-negative integers")
    if not isinstance(datatype, str) or datatype not in KNOWN:
        shown = repr(datatype) if isinstance(datatype, str) else _kind(datatype)
        raise _bad(f"{at}/datatype", f"unknown datatype {shown}: expected one of {', '.join(sorted(KNOWN))}")
    data = _flat(tensor["data"], f"{at}/data")
    size = 1
    for d in shape:
        size *= d
    if size != len(data):
        raise _bad(f"{at}/data", f"shape {shape} holds {size} elements but data has {len(data)}")
    return name, shape, datatype, data


def _kind(value: Any) -> str:
    """What a JSON value is, without its repr (it may be nested too deep to print)."""
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _cast(value: Any, kind: str, datatype: str) -> Any:
    if kind == "boolean" and datatype != "BOOL" and value in (0, 1):
        return bool(value)
    if kind == "integer" and datatype.startswith("FP") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def instances_from_inputs(config: ServiceConfig, body: Any) -> list[dict[str, Any]]:
    """The rows an inference request carries, for the same validation as /v1/predict."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise _bad("/inputs", "expected a non-empty list of input tensors")
    tensors = [_tensor(t, i) for i, t in enumerate(body["inputs"])]
    if tensors[0][1][:1] == [0]:
        raise _bad("/inputs/0/shape", "expected at least one row: a shape of [N] or [N, ...] with N >= 1")
    kinds = {f.name: f.type for f in config.inputs}
    if len(tensors) == 1 and tensors[0][0] not in kinds and len(tensors[0][1]) == 2:
        _name, (n, width), datatype, data = tensors[0]
        if width != len(config.inputs):
            raise _bad("/inputs/0/shape", f"expected [N, {len(config.inputs)}]: one column per input, in order")
        if datatype not in NUMERIC:
            raise _bad("/inputs/0/datatype", "a single [N, F] tensor must be numeric")
        names = [f.name for f in config.inputs]
        return [{k: _cast(data[r * width + c], kinds[k], datatype) for c, k in enumerate(names)} for r in range(n)]
    rows: list[dict[str, Any]] = []
    for i, (name, shape, datatype, data) in enumerate(tensors):
        if name not in kinds:
            raise _bad(f"/inputs/{i}/name", f"unknown input {name!r}.{did_you_mean(name, kinds)}")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise _bad(f"/inputs/{i}/shape", "expected [N] or [N, 1] for a per-feature tensor")
        if not rows:
            rows = [{} for _ in data]
        if len(data) != len(rows):
            raise _bad(f"/inputs/{i}/shape", f"has {len(data)} rows; the first input has {len(rows)}")
        for row, value in zip(rows, data):
            row[name] = _cast(value, kinds[name], datatype)
    return rows


def outputs(config: ServiceConfig, answer: Answer, requested: Any) -> list[dict[str, Any]]:
    """V2 output tensors for a /v1-style answer, limited to the requested names."""
    predictions = answer["predictions"]
    n = len(predictions)
    kind = {"classification": "BYTES", "regression": "FP64", "anomaly": "BOOL"}[config.task]
    tensors: list[dict[str, Any]] = [{"name": "predict", "shape": [n], "datatype": kind, "data": predictions}]
    if answer.get("probabilities") is not None:
        labels = [str(x) for x in config.labels]
        # A row is None for a sequence record still pending in the buffer: OIP has no answer for it yet.
        data = [row[label] for row in answer["probabilities"] for label in labels]  # type: ignore[index]
        tensors.append(
            {"name": "predict_proba", "shape": [n, len(labels)], "datatype": "FP64", "data": data,
             "parameters": {"labels": labels}}
        )  # fmt: skip
    if answer.get("scores") is not None:
        tensors.append({"name": "score", "shape": [n], "datatype": "FP64", "data": answer["scores"]})
    if requested is None:
        return tensors
    if not isinstance(requested, list):
        raise _bad("/outputs", 'expected a list of {"name": ...}')
    wanted = [r.get("name") if isinstance(r, dict) else None for r in requested]
    names = [t["name"] for t in tensors]
    for i, name in enumerate(wanted):
        if name not in names:
            raise _bad(f"/outputs/{i}/name", f"unknown output {name!r}: expected one of {', '.join(names)}")
    return [t for t in tensors if t["name"] in wanted]


def metadata(config: ServiceConfig, version: int | None) -> dict[str, Any]:
    out: list[dict[str, Any]] = [
        {"name": "predict", "datatype": {"classification": "BYTES", "regression": "FP64", "anomaly": "BOOL"}[config.task],
         "shape": [-1]}
    ]  # fmt: skip
    if config.task == "classification":
        out.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(config.labels)]})
    if config.task == "anomaly":
        out.append({"name": "score", "datatype": "FP64", "shape": [-1]})
    return {
        "name": config.name,
        "versions": [str(version)] if version is not None else [],
        "platform": f"mlrm/{config.algorithm}",
        "inputs": [{"name": f.name, "datatype": DATATYPES[f.type], "shape": [-1]} for f in config.inputs],
        "outputs": out,
    }
