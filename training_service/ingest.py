"""Turn a posted batch (JSON records or CSV) into validated samples and a
row-by-row report.

Validation is mlrm.training.trainer.dataset(), the very code training runs, which
validates features with the RowEncoder that predict uses: JSON values must
have their declared types, CSV cells are parsed from text first. CSV text is
read by mlrm.training.csv_files, as `mlrm train --data` reads a file (encoding,
delimiter, decimal commas, missing columns). Records are stored as received
(CSV: without the columns that are ignored); training re-validates them all
with strings=True, which parses only string cells, so a JSON record
(already typed, or it would have been rejected here) and a CSV record come
out the same. For a windowed config set a record is accepted when it is
valid; windows are cut at training time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from mlrm.config.service_config import ServiceConfig
from mlrm.core.encoding import TargetEncoder
from mlrm.errors import FieldError, RequestError
from mlrm.training import csv_files
from mlrm.training.trainer import dataset
from training_service.store import Sample

POINTER = "/records"
CSV_TYPES = ("text/csv", "application/csv")
JSON_TYPES = ("application/json",)
# Longest name or text value stored. Labels, categories, stream ids and ISO times are tens of
# characters; this leaves room for any readable one while a stored row stays within columns x 1 KiB,
# so a client cannot fill the disk with padded cells (issue 13: 130 KB cells, 157 MB in 3 s).
MAX_VALUE_CHARS = 1024


@dataclass
class Batch:
    """A decoded post: JSON records, or CSV text (read for a config set by check())."""

    records: list[Any]
    strings: bool
    text: str | None = None
    notes: list[csv_files.Note] = field(default_factory=list)


@dataclass
class Checked:
    """Accepted samples (in order), the verdict on every row, and notes on how CSV text was read."""

    samples: list[Sample]
    accepted_rows: list[int]
    rejected: dict[int, list[FieldError]]
    total: int
    lines: list[int] = field(default_factory=list)  # CSV: the body line each record starts on
    notes: list[csv_files.Note] = field(default_factory=list)


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
    if not batch.records and batch.text is None:  # CSV: check() says what an empty file lacks
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
    text, notes = csv_files.decode(body)
    try:
        # Counted here for the limit, read for the config set in check().
        count = max(0, sum(1 for _ in csv_files.scan(text, csv_files.choose_delimiter(text.split("\n", 1)[0]))) - 1)
    except csv_files.CsvError as exc:
        raise _csv_problem(exc) from None
    return Batch([None] * count, strings=True, text=text, notes=notes)


def _csv_problem(exc: csv_files.CsvError) -> RequestError:
    return RequestError(
        "Invalid CSV", 422, kind="invalid-csv", detail=f"line {exc.line}: {exc.text}",
        errors=[FieldError("", exc.text, line=exc.line)],
    )  # fmt: skip


def _row_of(error: FieldError) -> int:
    # Pointers are /records/<row>[/<field>], made with POINTER below.
    return int(error.pointer[len(POINTER) + 1 :].split("/", 1)[0])


def too_long(records: list[Any], kept: set[str] | None) -> dict[int, list[FieldError]]:
    """Rows with a name or text value over MAX_VALUE_CHARS, the first such field named (kept: CSV's stored columns)."""
    found: dict[int, list[FieldError]] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            continue
        for name, value in record.items():
            if kept is not None and name not in kept:
                continue  # an ignored CSV column: dropped, never stored
            size = max(len(name), len(value) if isinstance(value, str) else 0)
            if size > MAX_VALUE_CHARS:
                shown = name if len(name) <= 64 else f"{name[:64]}..."
                found[i] = [FieldError(f"{POINTER}/{i}/{shown}", f"{size} characters; the limit is {MAX_VALUE_CHARS} "
                                       "for a name or a value. Send the value without padding; no label, category, "
                                       "stream id or time is that long")]  # fmt: skip
                break
    return found


def check(config: ServiceConfig, batch: Batch) -> Checked:
    """Validate every record; keep the good ones as samples (RequestError 422 for unreadable CSV)."""
    records: list[Any] = batch.records
    invalid: dict[int, list[FieldError]] = {}
    lines: list[int] = []
    notes = batch.notes
    if batch.text is not None:
        try:
            table = csv_files.parse(batch.text, config, POINTER, batch.notes)
        except csv_files.CsvError as exc:
            raise _csv_problem(exc) from None
        records, invalid, lines, notes = table.records, table.invalid, table.lines, table.notes
    long = too_long(records, csv_files.Columns.of(config).names if batch.text is not None else None)
    for i, errors in long.items():
        invalid = {**invalid, i: [*invalid.get(i, []), *errors]}
    # A too-long row is validated as empty: its value is neither parsed nor echoed in a message.
    checked = [{} if i in long else r for i, r in enumerate(records)] if long else records
    data = dataset(config, checked, strings=batch.strings, pointer=POINTER, invalid=invalid)
    if data.ignored:  # stored without them: training would ignore them anyway
        records = [{k: v for k, v in r.items() if k not in data.ignored} for r in records]
    rejected: dict[int, list[FieldError]] = {}
    for error in data.rejected:
        row = _row_of(error)
        if row not in long or any(error is e for e in invalid[row]):  # not "missing ..." for the emptied row
            rejected.setdefault(row, []).append(error)
    samples: list[Sample] = []
    targets = TargetEncoder(config) if config.target is not None else None
    for i in data.accepted:
        label = value = None
        if targets is not None and config.target is not None:
            code, _ = targets.encode_one(records[i].get(config.target.name))
            label, value = (str(config.labels[int(code)]), None) if config.task == "classification" else (None, code)
        samples.append(Sample(records[i], label, value))
    return Checked(samples, list(data.accepted), rejected, len(records), lines, notes)


def report(service: str, checked: Checked, ids: list[int], batch: int) -> dict[str, Any]:
    """The 202 body: counts, and every row's verdict (id if stored, errors if not)."""
    rows: list[dict[str, Any]] = []
    id_of = dict(zip(checked.accepted_rows, ids, strict=True))
    for i in range(checked.total):
        row: dict[str, Any] = {"index": i}
        if checked.lines:
            row["line"] = checked.lines[i]
        if i in id_of:
            rows.append({**row, "status": "accepted", "id": id_of[i]})
        else:
            rows.append({**row, "status": "rejected", "errors": [e.as_dict() for e in checked.rejected.get(i, [])]})
    body = {
        "service": service,
        "batch": batch,
        "accepted": len(ids),
        "rejected": checked.total - len(ids),
        "problems": sum(len(e) for e in checked.rejected.values()),
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "rows": rows,
    }
    if checked.notes:
        body["notes"] = [{"line": n.line, "detail": n.text} for n in checked.notes]
    return body


def nothing_accepted(checked: Checked) -> RequestError:
    """422 when no row of a batch is usable (nothing is stored)."""
    errors = [
        FieldError(e.pointer, e.detail, checked.lines[i] if checked.lines else None)
        for i in sorted(checked.rejected) for e in checked.rejected[i]
    ]  # fmt: skip
    first = f" First: {errors[0].pointer}: {errors[0].detail}" if errors else ""
    return RequestError(
        "No sample accepted", 422, kind="invalid-samples",
        detail=f"all {checked.total} records were rejected; nothing was stored.{first}", errors=errors[:100],
    )  # fmt: skip
