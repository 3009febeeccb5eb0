"""mlrm's one log format (mlrm/logs.py): text lines with the time once, level,
component and message; JSON objects with the same and the extra fields; what
`mlrm up` recognises as already formatted."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from mlrm import logs
from mlrm.errors import DataError

TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO training-service\.scheduler: job 3 started$")


def record(name: str, message: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args or None, None)
    made.__dict__.update(extra)
    return made


def test_a_text_line_has_the_time_once_in_utc_then_level_component_and_message() -> None:
    line = logs.Formatter("training-service").format(record("training_service.scheduler", "job %s started", 3))
    assert TEXT.match(line), line
    assert logs.formatted(line)
    assert logs.parts(line) == ("training-service.scheduler", "job 3 started")


@pytest.mark.parametrize(
    ("logger", "component"),
    [
        ("gunicorn.error", "pcb.gunicorn"),
        ("gunicorn.access", "pcb.access"),
        ("mlrm.core.service", "pcb.core.service"),
        ("training_service.jobs", "pcb.jobs"),
        ("training_service", "pcb"),
        ("root", "pcb"),
        ("paho.mqtt.client", "pcb.paho.mqtt.client"),
    ],
)
def test_the_component_is_the_service_then_the_logger_without_its_package(logger: str, component: str) -> None:
    assert logs.component("pcb", logger) == component


def test_a_traceback_is_indented_under_its_line_so_readers_keep_it_with_its_record() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("mlrm.rest", "unhandled error", level=logging.ERROR)
        failed.exc_info = sys.exc_info()
    first, *rest = logs.Formatter("pcb").format(failed).splitlines()
    assert first.endswith(" ERROR pcb.rest: unhandled error")
    assert rest[0] == "  Traceback (most recent call last):" and rest[-1] == "  ValueError: boom"
    assert all(logs.formatted(line) for line in rest)


def test_a_json_line_is_one_object_with_ts_level_component_message_pid_and_extras() -> None:
    line = logs.Formatter("pcb", "json").format(record("mlrm.core.service", "now serving %s", 2, version=2))
    body = json.loads(line)
    assert list(body)[:4] == ["ts", "level", "component", "message"]
    assert body["level"] == "INFO" and body["component"] == "pcb.core.service" and body["message"] == "now serving 2"
    assert body["version"] == 2 and isinstance(body["pid"], int)
    assert logs.formatted(line) and logs.parts(line) == ("pcb.core.service", "now serving 2")


def test_an_access_line_in_json_carries_status_method_path_and_duration_as_fields() -> None:
    atoms = {"h": "127.0.0.1", "r": "POST /v1/predict HTTP/1.1", "m": "POST", "U": "/v1/predict", "q": "",
             "s": "200", "B": 80, "L": "0.001234"}  # fmt: skip
    access = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, logs.ACCESS_FORMAT, (atoms,), None)
    body = json.loads(logs.Formatter("pcb", "json").format(access))
    assert body["message"] == '127.0.0.1 "POST /v1/predict HTTP/1.1" 200 80 0.001234s'
    assert (body["status"], body["method"], body["path"], body["duration_s"]) == (200, "POST", "/v1/predict", 0.001234)


def test_a_printed_line_is_not_taken_for_a_log_line() -> None:
    assert not logs.formatted("mlrm serve: --mqtt-broker: bad URL")
    assert logs.parts("2026-12-01 bare words") is None and logs.parts("{not json") is None


def test_an_unknown_format_names_where_it_came_from_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.ENV, "yaml")
    with pytest.raises(DataError, match=r"'yaml' \(from MLRM_LOG_FORMAT\): expected text or json"):
        logs.log_format()
    assert logs.log_format("json") == "json"
