"""One log format for every mlrm process: gunicorn, the ML service, the training service, `mlrm up`.

text (the default), one line per record, the time once and in UTC:

    2026-12-01T04:40:00.123Z INFO training-service.scheduler: trigger min_new_samples fired for air-quality: job 3

json (`--log-format json`), one object per line for a log shipper: ts, level,
component and message, then pid and any extra fields (an access line's
status, method, path...; a traceback as exc_info).

The component is the service's name, then the logger's without its package:
`pcb-inspection.core.service`, `pcb-inspection.gunicorn`, `training-service.jobs`,
`up` for `mlrm up` itself. A line a process printed without logging (a crash
before logging was set up) is wrapped by `mlrm up` into the same format.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

from mlrm.errors import DataError

FORMATS = ("text", "json")
# How a service started by `mlrm up` (or forked by one) learns the format: inherited by every child.
ENV = "MLRM_LOG_FORMAT"
# Logger name prefixes dropped from a component: the package says nothing a service's name does not.
_PACKAGES = ("mlrm.", "training_service.", "gunicorn.")
_SHORT = {"gunicorn.error": "gunicorn", "gunicorn.access": "access", "training_service": "", "mlrm": ""}
# Attributes every LogRecord has; anything else was passed as extra= and goes into a JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# gunicorn's access atoms (a dict as the record's args) worth a field of their own.
_ACCESS = {"h": "remote", "m": "method", "U": "path", "q": "query", "s": "status", "B": "bytes", "L": "duration_s"}
# No time in it (the line has one): remote, request line, status, bytes, seconds.
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(L)ss'
_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ (\S+): ")


def log_format(given: str | None = None) -> str:
    """The format asked for: given (a --log-format), else $MLRM_LOG_FORMAT, else text."""
    chosen = given or os.environ.get(ENV) or "text"
    if chosen not in FORMATS:
        raise DataError(f"log format {chosen!r} (from {'--log-format' if given else ENV}): expected text or json")
    return chosen


def timestamp(t: float | None = None) -> str:
    """ISO 8601 in UTC with milliseconds: 2026-12-01T04:40:00.123Z."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def component(service: str, logger: str) -> str:
    """service.part: the logger's name without its package (gunicorn.error -> gunicorn)."""
    if logger in _SHORT:
        part = _SHORT[logger]
    else:
        part = next((logger[len(p) :] for p in _PACKAGES if logger.startswith(p)), logger)
    if logger == "root":
        part = ""
    return f"{service}.{part}" if part else service


def line(fmt: str, component: str, level: str, message: str, t: float | None = None, **fields: Any) -> str:
    """One log line in fmt, without its newline."""
    if fmt == "json":
        return json.dumps({"ts": timestamp(t), "level": level, "component": component, "message": message, **fields},
                          default=str, ensure_ascii=False)  # fmt: skip
    return f"{timestamp(t)} {level} {component}: {message}"


class Formatter(logging.Formatter):
    """A LogRecord as one line of text or JSON (see the module's docstring)."""

    def __init__(self, service: str = "mlrm", fmt: str = "text") -> None:
        super().__init__()
        self.service, self.fmt = service, fmt

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        where = component(self.service, record.name)
        if self.fmt != "json":
            text = line("text", where, record.levelname, message, record.created)
            if not record.exc_info:
                return text
            # Indented under its line: a reader (and `mlrm up`'s log files) tell it from the next record.
            return "\n".join([text, *("  " + x for x in self.formatException(record.exc_info).splitlines())])
        fields: dict[str, Any] = {"pid": record.process}
        fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            fields.update({name: record.args.get(atom) for atom, name in _ACCESS.items()})
            fields.update(status=_number(int, fields["status"]), duration_s=_number(float, fields["duration_s"]))
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        return line("json", where, record.levelname, message, record.created, **fields)


def _number(kind: type[int] | type[float], value: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return value


def formatted(text: str) -> bool:
    """Whether a line a process wrote is already a log line of this format (or continues one: indented)."""
    return bool(_TEXT.match(text)) or text.startswith('{"ts": ') or text[:1] in (" ", "\t")


def parts(text: str) -> tuple[str, str] | None:
    """(component, message) of a log line of either format; None for anything else."""
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if isinstance(record, dict) and "component" in record:
            return str(record["component"]), str(record.get("message", ""))
        return None
    found = _TEXT.match(text)
    return (found.group(1), text[found.end() :]) if found else None


def configure(service: str, fmt: str | None = None, level: str = "info") -> None:
    """Send every logger's records to stderr in one format (a process that gunicorn does not configure)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter(service, log_format(fmt)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _adopt("mlrm.audit")


def _adopt(name: str) -> None:
    """A logger that set up its own handler (for processes nobody configures) now goes through the root's."""
    logger = logging.getLogger(name)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.propagate = True


def gunicorn_config(
    service: str, fmt: str | None = None, level: str = "info", access_log: bool = False
) -> dict[str, Any]:
    """gunicorn's logconfig_dict: its error and access logs and the root logger, in one format, to stderr."""
    formatter = {"()": Formatter, "service": service, "fmt": log_format(fmt)}
    handler = {"class": "logging.StreamHandler", "formatter": "mlrm", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mlrm": formatter},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            # Without --access-log, WARNING drops the access lines gunicorn logs at INFO.
            "gunicorn.access": {"level": "INFO" if access_log else "WARNING", "handlers": [], "propagate": True},
            "mlrm.audit": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }


def add_option(parser: Any, note: str = "") -> None:
    """--log-format on a command that runs services (mlrm serve, mlrm training-service, mlrm up)."""
    parser.add_argument(
        "--log-format", choices=FORMATS, default=None,
        help=f"text (default: time, level, component, message on one line) or json (one object a line, for a "
        f"log shipper){note}; default: ${ENV}, else text. docs/metrics.md#logs",
    )  # fmt: skip
