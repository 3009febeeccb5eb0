"""Predict for a config set with a `sequence` section: each instance is a
ready window (`{"window": [record, ...]}`) or a single record that is
buffered per stream until its window is full.

The answer keeps one entry per instance in every list: `predictions` (null
while a stream's window is still filling), the model's other outputs, and
`windows`: `{"stream": ..., "pending": true, "needed": 12}` says 12 more
records of that stream are needed before it is answered.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np

from mlrm.config.service_config import ServiceConfig
from mlrm.core.answer import Outputs, WindowState
from mlrm.core.model import Model
from mlrm.core.sequence import WindowEncoder, request_error
from mlrm.errors import FieldError, RequestError
from mlrm.storage.stream_buffer import Incoming, StreamBuffer

MAX_ERRORS = 20


class SequenceInput:
    """The windowing part of a Service: validation, the stream buffer, the answer's shape."""

    def __init__(self, config: ServiceConfig) -> None:
        spec = config.sequence
        assert spec is not None
        self.config, self.spec = config, spec
        self._buffer: StreamBuffer | None = None

    def buffer(self, windows: WindowEncoder) -> StreamBuffer:
        """The stream buffer, opened on first use (a service fed only ready windows never creates it)."""
        if self._buffer is None:
            spec, settings = self.spec, self.spec.buffer
            layout = json.dumps({"window": spec.window, "columns": [windows.rows.columns[c] for c in windows.columns]})
            self._buffer = StreamBuffer(
                self.config.path / settings.file,
                window=spec.window, step=spec.step, width=windows.width, ordered=spec.order_by is not None,
                max_streams=settings.max_streams, idle_seconds=float(settings.idle_seconds),
                layout=layout,
            )  # fmt: skip
        return self._buffer

    def predict(self, model: Model, instances: Any) -> Outputs:
        """Validate every instance, buffer the records, predict every full window."""
        windows = model.windows
        assert windows is not None
        if not isinstance(instances, list) or not instances:
            raise RequestError("Invalid input", 422, errors=[FieldError("/instances", "expected a non-empty array "
                               "of windows ({\"window\": [record, ...]}) or records")])  # fmt: skip
        ready: dict[int, np.ndarray] = {}
        records: list[tuple[int, Incoming]] = []
        errors: list[FieldError] = []
        for i, instance in enumerate(instances):
            at = f"/instances/{i}"
            if type(instance) is dict and "window" in instance:
                unknown = next((k for k in instance if k != "window"), None)  # the first only, however many
                if unknown is not None:
                    errors.append(FieldError(f"{at}/{unknown}", f"unknown key '{unknown}': a window instance holds "
                                             "only 'window'"))  # fmt: skip
                matrix, found = windows.window(instance["window"], f"{at}/window")
                if matrix is not None:
                    ready[i] = matrix
            else:
                record, found = windows.record(instance, at)
                if record is not None:
                    stream, time, row = record
                    records.append((i, Incoming(stream, time, row, at, f"{at}/{self.spec.order_by}")))
            errors += found
            if len(errors) >= MAX_ERRORS:
                break
        if errors:
            raise request_error(errors)
        entries: list[WindowState] = [{"stream": None, "pending": False, "needed": 0} for _ in instances]
        if records:
            for (i, _), pushed in zip(records, self.buffer(windows).push([r for _, r in records]), strict=True):
                entries[i] = {"stream": pushed.stream if self.spec.stream else None,
                              "pending": pushed.window is None, "needed": pushed.needed}  # fmt: skip
                if pushed.window is not None:
                    ready[i] = pushed.window
        # Spread column by column, whichever the task's outputs are: a plain dict until returned.
        body: dict[str, Any] = {"predictions": [None] * len(instances)}
        if ready:
            order = sorted(ready)
            outputs = model.outputs(model.predict_matrix(np.stack([ready[i] for i in order])))
            for key, values in outputs.items():
                if isinstance(values, list):
                    column = body.setdefault(key, [None] * len(instances))
                    for i, value in zip(order, values, strict=True):
                        column[i] = value
        body["windows"] = entries
        return cast(Outputs, body)
