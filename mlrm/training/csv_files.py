"""The CSV files people bring, read the same way by `mlrm train --data` and by
the training service's ingest (and split for upload by `mlrm train --remote`).

What a spreadsheet writes is accepted where its meaning is certain, with a
note where a person should know: a UTF-8 byte order mark (Excel's "CSV
UTF-8") silently; a file that is not UTF-8 is read as Windows-1252, which
Excel's plain "CSV" is in Western Europe and which decodes any byte, with a
note naming the line and byte, because its accents may be wrong; `;` as the
delimiter, chosen from the header line against the config set's column
names (a guess from the data, like csv.Sniffer's, can pick a digit or a
decimal comma); and, in a `;` file, decimal commas in numeric columns.
What cannot be read is a CsvError naming the line, what is wrong and the fix.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlrm.config.service_config import ServiceConfig
from mlrm.errors import DataError, FieldError, did_you_mean

DELIMITERS = (",", ";", "\t")
DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*")
SHOWN = 12  # header names listed in a message


class CsvError(DataError):
    """A CSV file that cannot be used: the line, what is wrong and the fix."""

    def __init__(self, line: int, text: str, path: str | Path | None = None) -> None:
        self.line, self.text, self.path = line, text, path
        super().__init__(f"{path}:{line}: {text}" if path is not None else f"line {line}: {text}")

    def at(self, path: str | Path) -> CsvError:
        """The same problem, naming the file."""
        return CsvError(self.line, self.text, path)


@dataclass(frozen=True)
class Note:
    """Something read differently from plain UTF-8 CSV, first seen on `line`."""

    line: int
    text: str

    def at(self, path: str | Path) -> str:
        return f"note: {path}:{self.line}: {self.text}"


@dataclass
class Table:
    """Records (cells as text, by column name) and the file line each starts on."""

    header: list[str]
    records: list[dict[str, str]]
    lines: list[int]
    delimiter: str
    notes: list[Note] = field(default_factory=list)
    # Records the reader itself rejects (more cells than the header has columns).
    invalid: dict[int, list[FieldError]] = field(default_factory=dict)


@dataclass(frozen=True)
class Columns:
    """What a config set expects of a CSV file's header."""

    required: dict[str, str]  # name -> its role, for messages
    optional: tuple[str, ...]
    numeric: frozenset[str]

    @classmethod
    def of(cls, config: ServiceConfig) -> Columns:
        required: dict[str, str] = {}
        spec = config.sequence
        if spec and spec.stream:
            required[spec.stream] = "the stream id, sequence.stream"
        if spec and spec.order_by:
            required[spec.order_by] = "the record time, sequence.order_by"
        optional = []
        for f in config.inputs:
            if f.required and f.default is None:
                required.setdefault(f.name, "a required input")
            else:
                optional.append(f.name)
        numeric = {f.name for f in config.inputs if f.type in ("number", "integer")}
        if spec and spec.order_by:
            numeric.add(spec.order_by)
        if config.target is not None:
            required.setdefault(config.target.name, "the target, target.name")
            if config.target.kind == "regression":
                numeric.add(config.target.name)
        return cls(required, tuple(optional), frozenset(numeric))

    @property
    def names(self) -> set[str]:
        return {*self.required, *self.optional}


def decode(raw: bytes) -> tuple[str, list[Note]]:
    """Bytes -> text: UTF-8 (a byte order mark dropped), else Windows-1252 with a note."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start]
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:  # five bytes cp1252 leaves undefined; Latin-1 defines them all
        text = raw.decode("latin-1")
    return text, [Note(line, f"byte 0x{byte:02X} is not UTF-8: read the file as Windows-1252 (Latin-1). "
                             "If any text looks wrong, save the file as 'CSV UTF-8' and train again.")]  # fmt: skip


def _blank(cells: list[str]) -> bool:
    # Whatever the delimiter, so the uploader and the service skip the same lines.
    return all(not c.strip(" \t,;") for c in cells)


def scan(text: str, delimiter: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of every non-blank record, the header first."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    first = 1
    try:
        for cells in reader:
            last = reader.line_num
            if not _blank(cells):
                yield first, last, cells
            first = last + 1
    except csv.Error as exc:
        raise CsvError(reader.line_num, f"not readable as CSV ({exc}). Save the file as 'CSV UTF-8' "
                                        "from the spreadsheet and train again.") from None  # fmt: skip


def choose_delimiter(header_line: str, names: set[str] | None = None) -> str:
    """The delimiter that splits the header into the most expected names (without names: into the most columns)."""

    def score(d: str) -> tuple[int, int, bool]:
        cells = [c.strip() for c in next(csv.reader([header_line], delimiter=d), [])]
        return (len(set(cells) & names) if names is not None else 0, len(cells), d == ",")

    return max(DELIMITERS, key=score)


def _first_line(text: str) -> str:
    return next((line for line in io.StringIO(text, newline="") if line.strip(" \t\r\n,;")), "")


def parse(text: str, config: ServiceConfig, pointer: str = "/rows", notes: list[Note] | None = None) -> Table:
    """Decoded CSV text -> a Table for this config set, or CsvError."""
    columns = Columns.of(config)
    expected = ", ".join(columns.required) or ", ".join(columns.optional)
    if not text.strip(" \t\r\n,;"):
        raise CsvError(1, f"the file is empty: expected a header line with the column names {expected}, "
                          "then one row per sample. Export the data with its header line.")  # fmt: skip
    delimiter = choose_delimiter(_first_line(text), columns.names)
    records = scan(text, delimiter)
    _, header_end, cells = next(records)
    header = [c.strip() for c in cells]
    _check_header(header, columns, header_end)
    table = Table(header, [], [], delimiter, list(notes or []))
    decimal_line = 0
    for first, _, cells in records:
        i = len(table.records)
        extra = cells[len(header) :]
        if any(c.strip() for c in extra):
            table.invalid[i] = [FieldError(f"{pointer}/{i}", f"line {first} has {len(cells)} cells; the header has "
                                           f"{len(header)} columns. Remove the extra cells, or quote a value that "
                                           f"holds '{delimiter}'")]  # fmt: skip
        record = {name: cell for name, cell in zip(header, cells) if name}
        if delimiter == ";":
            for name in columns.numeric & record.keys():
                if DECIMAL_COMMA.fullmatch(record[name]):
                    record[name] = record[name].replace(",", ".")
                    decimal_line = decimal_line or first
        table.records.append(record)
        table.lines.append(first)
    if not table.records:
        raise CsvError(header_end + 1, "no rows after the header line: add one row per sample under it.")
    if decimal_line:
        table.notes.append(Note(decimal_line, "decimal commas read as decimal points (98,5 = 98.5) in the "
                                              "numeric columns of this ';'-separated file."))  # fmt: skip
    absent = [n for n in columns.optional if n not in header]
    if absent:
        table.notes.append(Note(1, f"no column {', '.join(map(repr, absent))} (optional): its values are "
                                   "taken as missing in every row."))  # fmt: skip
    return table


def _check_header(header: list[str], columns: Columns, line: int) -> None:
    named = [h for h in header if h]
    twice = next((h for i, h in enumerate(named) if h in named[:i]), None)
    if twice is not None:
        raise CsvError(line, f"column {twice!r} appears twice in the header. Rename or remove one of them.")
    missing = [n for n in columns.required if n not in header]
    if not missing:
        return
    what = "; ".join(f"{n!r} ({columns.required[n]})" for n in missing)
    shown = ", ".join(named[:SHOWN]) + (f" and {len(named) - SHOWN} more" if len(named) > SHOWN else "")
    if not set(named) & columns.names:
        fix = f"The first line must name the columns: {', '.join(columns.required)}."
    else:
        hint = did_you_mean(missing[0], [h for h in named if h not in columns.names]).strip()
        fix = f"{hint + ' ' if hint else ''}Add the column{'s' if len(missing) > 1 else ''} or correct the header's spelling."
    raise CsvError(line, f"missing column{'s' if len(missing) > 1 else ''} {what}; the header has: {shown}. {fix}")


def read_file(path: str | Path, config: ServiceConfig) -> Table:
    """Read a CSV file for this config set; every problem names the file and line."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such data file: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder: pass a CSV file") from None
    text, notes = decode(raw)
    try:
        return parse(text, config, notes=notes)
    except CsvError as exc:
        raise exc.at(path) from None


@dataclass
class Upload:
    """A file cut into records for posting in chunks: `lines` are the file's
    lines; the header is lines[:header_end]; record k spans lines
    spans[k][0]..spans[k][1] (1-based, inclusive)."""

    lines: list[str]
    header_end: int
    spans: list[tuple[int, int]]

    @classmethod
    def of(cls, text: str) -> Upload:
        lines = io.StringIO(text, newline="").readlines()
        spans = [(a, b) for a, b, _ in scan(text, choose_delimiter(_first_line(text)))]
        if not spans:
            return cls(lines, len(lines), [])
        return cls(lines, spans[0][1], spans[1:])

    def chunk(self, start: int, stop: int) -> str:
        """The header and records start..stop-1 (with the blank lines between them), as the file has them."""
        if start >= len(self.spans):
            return "".join(self.lines[: self.header_end])
        first, last = self.spans[start][0], self.spans[min(stop, len(self.spans)) - 1][1]
        return "".join(self.lines[: self.header_end] + self.lines[first - 1 : last])

    def file_line(self, start: int, line: int) -> int:
        """The file line of `line` in chunk(start, ...)."""
        if line <= self.header_end or start >= len(self.spans):
            return line
        return line - self.header_end - 1 + self.spans[start][0]


# Messages `mlrm train` prints the same way for a local file and for a remote upload.
SHOWN_ROWS = 10


def rejected_message(path: str | Path, line: int, pointer: str, detail: str) -> str:
    """One problem of a rejected row: file, line, the column, what is wrong."""
    column = pointer.split("/", 3)[3] if pointer.count("/") >= 3 else ""
    return f"rejected {path}:{line}: {column + ': ' if column else ''}{detail}"


def more_rejected(rows: int) -> str:
    return f"... and {rows} more rejected rows"


def nothing_accepted(path: str | Path, rows: int) -> str:
    return (f"{path}: none of its {rows} rows was accepted, so nothing was trained. "
            "Fix the rows named above and run again.")  # fmt: skip
