"""The Open Inference Protocol's binary tensor data extension, without Flask.

A request body may be a JSON header of `Inference-Header-Content-Length`
bytes followed by the raw data of every input whose parameters carry
`binary_data_size`, in input order; an answer is built the same way for the
outputs asked for with `binary_data: true` (or, when no outputs are named,
the request's `binary_data_output: true`). Data is little-endian and
row-major; a BYTES element is a 4-byte length followed by its bytes. This is
what `tritonclient[http]` sends and expects by default.

read_request turns any /v2 infer body (plain JSON, binary, gzip or deflate)
into the JSON form inference.instances_from_inputs reads; write_reply does
the reverse for the answer.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
import orjson

from mlrm.errors import FieldError, RequestError

HEADER = "Inference-Header-Content-Length"
# Numpy dtypes of the fixed-size datatypes, all little-endian as the extension says.
DTYPES = {
    "BOOL": "|b1", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
JSON_TYPES = ("", "application/json", "application/octet-stream")
# HTTP's "deflate" is the zlib format (RFC 9110), which is what tritonclient sends.
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _bad(pointer: str, detail: str) -> RequestError:
    return RequestError("Invalid inference request", 400, errors=[FieldError(pointer, detail)])


def _unsupported(detail: str) -> RequestError:
    return RequestError("Unsupported media type", 415, detail=detail, kind="unsupported-media-type")


def read_request(
    data: bytes,
    *,
    mimetype: str = "",
    header_length: str | None = None,
    encoding: str | None = None,
    limit: int | None = None,
) -> Any:
    """The JSON form of an infer body: binary inputs' data filled in, output parameters checked.

    mimetype, header_length and encoding are the request's Content-Type,
    Inference-Header-Content-Length and Content-Encoding; limit is
    limits.max_body_bytes, which also bounds the body once inflated.
    """
    if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise _unsupported(
            f"send Content-Type: application/json (or application/octet-stream with {HEADER}), not {mimetype}"
        )
    data = _inflate(data, encoding, limit)
    header, tail = _split(data, header_length)
    body = _loads(header, header_length)
    if isinstance(body, dict):
        _attach_inputs(body, tail)
        _check_outputs(body)
    elif tail:
        raise _bad("", f"the {HEADER} header is not an inference request object")
    return body


def _inflate(data: bytes, encoding: str | None, limit: int | None) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding not in WBITS:
        raise _unsupported(f"Content-Encoding: {encoding} is not supported: send gzip, deflate or an uncompressed body")
    inflater = zlib.decompressobj(WBITS[encoding])
    try:
        # One byte over the limit is enough to know it is too large, without inflating a bomb.
        out = inflater.decompress(data, (limit + 1) if limit else 0)
    except zlib.error as exc:
        raise RequestError(
            "Malformed body", 400, detail=f"the body is not valid {encoding} data ({exc}): compress it with {encoding}, "
            "or send it uncompressed without Content-Encoding", kind="malformed-body",
        ) from None  # fmt: skip
    if limit and len(out) > limit:
        raise RequestError(
            "Request Entity Too Large", 413, kind="request-entity-too-large",
            detail=f"request body too large once inflated: the limit is {limit} bytes (limits.max_body_bytes)",
        )  # fmt: skip
    if not inflater.eof:
        raise RequestError("Malformed body", 400, detail=f"the {encoding} body is truncated", kind="malformed-body")
    return out


def _split(data: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return data, b""
    text = header_length.strip()
    if not text.isdigit() or not 0 < int(text) <= len(data):
        raise RequestError(
            "Invalid inference request", 400, detail=f"{HEADER}: {header_length!r} must be the byte length of the "
            f"JSON header, a whole number from 1 to the body's length ({len(data)} bytes)",
        )  # fmt: skip
    n = int(text)
    return data[:n], data[n:]


def _loads(header: bytes, header_length: str | None) -> Any:
    try:
        return orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        where = f"the first {header_length} bytes ({HEADER}) are" if header_length else "the body is"
        hint = "" if header_length else f"; binary tensor data needs the {HEADER} header"
        raise RequestError(
            "Malformed JSON",
            400,
            errors=[FieldError("", f"{where} not valid JSON: {exc}{hint}")],
            kind="malformed-json",
        ) from None


def _parameters(tensor: dict[str, Any], at: str) -> dict[str, Any]:
    parameters = tensor.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _bad(f"{at}/parameters", "expected an object of parameters")
    return parameters


def _attach_inputs(body: dict[str, Any], tail: bytes) -> None:
    """Give every binary input its `data`, taken from the tail in input order."""
    inputs = body.get("inputs")
    offset = 0
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        if not isinstance(tensor, dict):
            continue  # instances_from_inputs names it
        at = f"/inputs/{i}"
        parameters = _parameters(tensor, at)
        if "shared_memory_region" in parameters:
            raise _bad(
                f"{at}/parameters/shared_memory_region", "shared memory is not supported: send the data in the body"
            )
        if "binary_data_size" not in parameters:
            continue
        name, size = tensor.get("name"), parameters["binary_data_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _bad(f"{at}/parameters/binary_data_size", f"input {name!r}: expected a byte count, got {size!r}")
        if "data" in tensor:
            raise _bad(f"{at}/data", f"input {name!r} has both data and binary_data_size: send one or the other")
        if offset + size > len(tail):
            raise _bad(
                f"{at}/parameters/binary_data_size",
                f"input {name!r} needs {size} bytes but only {len(tail) - offset} of the {len(tail)} bytes after "
                f"the JSON header are left: the binary_data_size values add up to more than the binary data sent",
            )
        tensor["data"] = _decode(tail[offset : offset + size], tensor, at)
        offset += size
    if offset != len(tail):
        raise RequestError(
            "Invalid inference request", 400, detail=f"{len(tail) - offset} bytes after the JSON header belong to no "
            f"input: the binary_data_size values add up to {offset} but {len(tail)} bytes were sent",
        )  # fmt: skip


def _decode(raw: bytes, tensor: dict[str, Any], at: str) -> list[Any]:
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(f"{at}/shape", f"input {name!r}: expected a list of non-negative integers")
    count = int(np.prod(shape, dtype=np.int64))
    if datatype == "BYTES":
        values: list[Any] = _decode_bytes(raw, name, at)
    elif datatype in DTYPES:
        itemsize = np.dtype(DTYPES[datatype]).itemsize
        if len(raw) % itemsize:
            raise _bad(
                f"{at}/parameters/binary_data_size",
                f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype} elements ({itemsize} bytes each)",
            )
        array = np.frombuffer(raw, DTYPES[datatype])
        if datatype == "BOOL" and not set(raw) <= {0, 1}:
            raise _bad(f"{at}/parameters/binary_data_size", f"input {name!r}: a BOOL element must be the byte 0 or 1")
        values = array.tolist()
    else:
        known = ", ".join([*DTYPES, "BYTES"])
        raise _bad(
            f"{at}/datatype",
            f"input {name!r}: datatype {datatype!r} cannot be sent as binary data: expected one of {known}",
        )
    if len(values) != count:
        raise _bad(
            f"{at}/shape",
            f"input {name!r}: shape {shape} holds {count} elements but its {len(raw)} bytes of binary data hold {len(values)}",
        )
    return values


def _decode_bytes(raw: bytes, name: Any, at: str) -> list[str]:
    values: list[str] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise _bad(
                f"{at}/parameters/binary_data_size",
                f"input {name!r}: element {len(values)} has a truncated 4-byte length",
            )
        (length,) = struct.unpack_from("<I", raw, pos)
        if pos + 4 + length > len(raw):
            raise _bad(
                f"{at}/parameters/binary_data_size",
                f"input {name!r}: element {len(values)} claims {length} bytes but only {len(raw) - pos - 4} are left",
            )
        try:
            values.append(raw[pos + 4 : pos + 4 + length].decode())
        except UnicodeDecodeError:
            raise _bad(f"{at}/data", f"input {name!r}: element {len(values)} is not valid UTF-8 text") from None
        pos += 4 + length
    return values


def _flag(parameters: dict[str, Any], key: str, at: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise _bad(f"{at}/parameters/{key}", f"expected true or false, got {value!r}")
    return value


def _check_outputs(body: dict[str, Any]) -> None:
    """Reject output options this server cannot honour, before anything is predicted."""
    if "parameters" in body:
        _flag(_parameters(body, ""), "binary_data_output", "")
    requested = body.get("outputs")
    for i, output in enumerate(requested if isinstance(requested, list) else []):
        if not isinstance(output, dict):
            continue  # inference.outputs names it
        at = f"/outputs/{i}"
        parameters = _parameters(output, at)
        _flag(parameters, "binary_data", at)
        for key, why in (
            ("classification", "the classification extension is not supported: ask for predict_proba instead"),
            ("shared_memory_region", "shared memory is not supported: the output comes back in the body"),
        ):
            if key in parameters:
                raise _bad(f"{at}/parameters/{key}", f"output {output.get('name')!r}: {why}")


def _binary(body: Any, name: str) -> bool:
    default = bool(body.get("parameters", {}).get("binary_data_output", False))
    requested = body.get("outputs")
    if not isinstance(requested, list):
        return default
    for output in requested:
        if output.get("name") == name:
            flag = output.get("parameters", {}).get("binary_data")
            return default if flag is None else bool(flag)
    return default


def _encode(data: list[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        items = [x if isinstance(x, bytes) else str(x).encode() for x in data]
        return b"".join(struct.pack("<I", len(x)) + x for x in items)
    return np.asarray(data, DTYPES[datatype]).tobytes()


def write_reply(reply: dict[str, Any], body: Any) -> tuple[bytes, int | None]:
    """The answer's bytes, and its JSON header's length when outputs follow as binary data (else None).

    body is the request as read_request returned it. A tensor holding a null
    (a record still waiting for its window) stays JSON, which a client reads
    either way: the extension has no binary null.
    """
    chunks: list[bytes] = []
    if isinstance(body, dict):
        for output in reply["outputs"]:
            if not _binary(body, output["name"]) or any(x is None for x in output["data"]):
                continue
            raw = _encode(output.pop("data"), output["datatype"])
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
            chunks.append(raw)
    header = orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
