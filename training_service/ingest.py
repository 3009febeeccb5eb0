"""Turn a posted batch (JSON records or CSV) into validated samples and a
row-by-row report.

Validation is mlrm.training.dataset(), the very code training runs, which
validates features with the RowEncoder that predict uses: JSON values must
have their declared types, CSV cells are parsed from text first. Records are
stored as received; training re-validates them all with strings=True, which
parses only string cells, so a JSON record (already typed, or it would have
been rejected here) and a CSV record come out the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import orjson

from mlrm.config.model import ServiceConfig
from mlrm.errors import FieldError, RequestError
from mlrm.training import dataset
from training_service.store import Sample

POINTER = "/records"
CSV_TYPES = ("text/csv", "application/csv")
JSON_TYPES = ("application/json",)


@dataclass
class Batch:
    """A decoded post: records, whether they are CSV text, and row problems found while decoding."""

    records: list[Any]
    strings: bool
    errors: dict[int, list[FieldError]] = field(default_factory=dict)


@dataclass
class Checked:
    """Accepted samples (in order) and the verdict on every row."""

    samples: list[Sample]
    accepted_rows: list[int]
    rejected: dict[int, list[FieldError]]
    total: int


def fingerprint(mimetype: str, body: bytes) -> str:
    """What an Idempotency-Key is bound to: a retry must send the same bytes."""
    return "sha256:" + hashlib.sha256(mimetype.encode() + b"\n" + body).hexdigest()


def decode(mimetype: str, body: bytes, max_records: int) -> Batch:
    """Parse a posted body by its media type (RequestError 400/413/415/422)."""
    if mimetype in CSV_TYPES:
        batch = _csv(body)
    elif mimetype in JSON_TYPES or mimetype.endswith("+json") or not mimetype:
        batch = _json(body)
    else:
        raise RequestError(
            "Unsupported media type", 415, kind="unsupported-media-type",
            detail=f"send Content-Type: application/json ({{\"records\": [...]}}) or text/csv, not {mimetype}",
        )  # fmt: skip
    if not batch.records:
        raise RequestError("No records", 422, errors=[FieldError(POINTER, "expected at least one record")])
    if len(batch.records) > max_records:
        raise RequestError(
            "Too many records", 413, kind="too-many-records",
            detail=f"{len(batch.records)} records in one post; the limit is {max_records} "
            "(training-service --max-records). Split the batch.",
        )  # fmt: skip
    return batch


def _json(body: bytes) -> Batch:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            "Malformed JSON", 400, errors=[FieldError("", f"not valid JSON: {exc}")], kind="malformed-json"
        ) from None
    if not isinstance(data, dict) or "records" not in data:
        raise RequestError(
            "Invalid request",
            422,
            errors=[FieldError("", 'expected {"records": [{feature: value, ..., target: value}]}')],
        )
    unknown = sorted(k for k in data if k != "records")
    if unknown:
        raise RequestError(
            "Invalid request", 422, errors=[FieldError(f"/{unknown[0]}", "unknown key; only 'records' is accepted")]
        )
    if not isinstance(data["records"], list):
        raise RequestError("Invalid request", 422, errors=[FieldError(POINTER, "expected an array of records")])
    return Batch(data["records"], strings=False)


def _csv(body: bytes) -> Batch:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError("Malformed CSV", 400, detail=f"CSV must be UTF-8: {exc}", kind="malformed-csv") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header or not any(header):
            raise RequestError(
                "No records", 422, errors=[FieldError("", "empty CSV: expected a header line of column names")]
            )
        duplicate = next((h for i, h in enumerate(header) if h in header[:i]), None)
        if duplicate is not None:
            raise RequestError(
                "Malformed CSV", 422, errors=[FieldError("", f"column {duplicate!r} appears twice in the header")]
            )
        batch = Batch([], strings=True)
        for cells in reader:
            if not cells or cells == [""]:
                continue
            i = len(batch.records)
            if len(cells) > len(header):
                batch.errors[i] = [FieldError(
                    f"{POINTER}/{i}", f"line {reader.line_num} has {len(cells)} cells; the header has {len(header)}"
                )]  # fmt: skip
            batch.records.append(dict(zip(header, cells, strict=False)))
    except csv.Error as exc:
        raise RequestError(
            "Malformed CSV", 400, detail=f"line {reader.line_num}: {exc}", kind="malformed-csv"
        ) from None
    return batch


def _row_of(error: FieldError) -> int:
    # Pointers are /records/<row>[/<field>], made with POINTER below.
    return int(error.pointer[len(POINTER) + 1 :].split("/", 1)[0])


def check(config: ServiceConfig, batch: Batch) -> Checked:
    """Validate every record; keep the good ones as samples."""
    data = dataset(config, batch.records, strings=batch.strings, pointer=POINTER)
    rejected: dict[int, list[FieldError]] = {}
    for error in data.rejected:
        rejected.setdefault(_row_of(error), []).append(error)
    for i, errors in batch.errors.items():
        rejected.setdefault(i, [])[:0] = errors
    samples: list[Sample] = []
    accepted: list[int] = []
    labels = config.labels
    for j, i in enumerate(data.rows):
        if i in rejected:
            continue
        label = value = None
        if data.y is not None:
            if config.task == "classification":
                label = str(labels[int(data.y[j])])
            else:
                value = float(data.y[j])
        samples.append(Sample(batch.records[i], label, value))
        accepted.append(i)
    return Checked(samples, accepted, rejected, len(batch.records))


def report(service: str, checked: Checked, ids: list[int], batch: int) -> dict[str, Any]:
    """The 202 body: counts, and every row's verdict (id if stored, errors if not)."""
    rows: list[dict[str, Any]] = []
    id_of = dict(zip(checked.accepted_rows, ids, strict=True))
    for i in range(checked.total):
        if i in id_of:
            rows.append({"index": i, "status": "accepted", "id": id_of[i]})
        else:
            rows.append(
                {"index": i, "status": "rejected", "errors": [e.as_dict() for e in checked.rejected.get(i, [])]}
            )
    return {
        "service": service,
        "batch": batch,
        "accepted": len(ids),
        "rejected": checked.total - len(ids),
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "rows": rows,
    }


def nothing_accepted(checked: Checked) -> RequestError:
    """422 when no row of a batch is usable (nothing is stored)."""
    errors = [e for i in sorted(checked.rejected) for e in checked.rejected[i]]
    return RequestError(
        "No sample accepted", 422, kind="invalid-samples",
        detail=f"all {checked.total} records were rejected; nothing was stored. First: {errors[0].pointer}: {errors[0].detail}",
        errors=errors[:100],
    )  # fmt: skip
