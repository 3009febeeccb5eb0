"""What a `sequence` section must mean, beyond its schema (one of loader.SECTION_CHECKS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlrm import algorithms
from mlrm.errors import did_you_mean

Report = Callable[[tuple[Any, ...], str], None]


def check_sequence(raw: dict[str, Any], report: Report) -> None:
    """Report every problem of the sequence section (or its absence) by key path."""
    name = raw["algorithm"]["name"]
    seq = raw.get("sequence")
    if seq is None:
        if algorithms.takes_windows(name):
            report(("algorithm", "name"), f"'{name}' reads windows of records: add a sequence section, "
                                          "e.g. sequence: {window: 50, step: 10}.")  # fmt: skip
        return
    at = ("sequence",)
    inputs = raw["inputs"]
    task = algorithms.task_of(name)
    target = (raw.get("target") or {}).get("name")
    for i, field in enumerate(seq.get("inputs") or []):
        if field not in inputs:
            report((*at, "inputs", i), f"'{field}' is not an input.{did_you_mean(field, inputs)} "
                                       f"Name inputs declared under inputs: {', '.join(inputs)}.")  # fmt: skip
    fed = seq.get("inputs") or list(inputs)
    fields = {"stream": seq.get("stream"), "order_by": None if seq["order_by"] == "arrival" else seq["order_by"]}
    for key, field in fields.items():
        if field is None:
            continue
        what = "stream id" if key == "stream" else "record time"
        if field in inputs:
            report((*at, key), f"'{field}' is declared under inputs, but the {what} is read from each record "
                               f"beside the inputs and never feeds the model. Remove '{field}' from inputs.")  # fmt: skip
        elif field == target:
            report((*at, key), f"'{field}' is the target; the {what} must be another field.")
    if fields["stream"] is not None and fields["stream"] == fields["order_by"]:
        report((*at, "order_by"), "order_by and stream name the same field: the time and the stream id differ.")
    if "label" in seq and task != "classification":
        report((*at, "label"), f"'label' chooses a window's class, but '{name}' does {task}. Remove it.")
    if "horizon" in seq and task != "regression":
        report((*at, "horizon"), f"'horizon' is for forecasting (regression), but '{name}' does {task}. Remove it.")
    if task == "regression" and target in fed and seq.get("horizon", 1) == 0:
        report((*at, "horizon"), f"horizon 0 predicts '{target}' at the window's last record, which the window "
                                 f"already holds as an input. Use horizon: 1 or more, or leave '{target}' out "
                                 "of sequence.inputs.")  # fmt: skip
