"""What a prediction answers: the body of /v1/predict, also sent over MQTT and OIP.

TypedDicts, not dataclasses: the answer is built as a plain dict and encoded
as it is, so naming its keys costs nothing per request, and the JSON stays
what it was. Keys appear in this order: predictions, then probabilities or
scores, then windows, then model.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ModelRef(TypedDict):
    """The version that answered."""

    name: str
    version: int | None


class WindowState(TypedDict):
    """Per instance of a sequence config set: where its window stands."""

    stream: str | None  # None: a ready window, or a config set with one stream
    pending: bool  # a buffered record whose window is not full yet (its prediction is null)
    needed: int  # records still missing before it is


class Outputs(TypedDict):
    """What the model says about the instances, one entry per instance in each list."""

    # Labels (classification), numbers (regression), flags (anomaly). In a sequence
    # config set's answer, every list holds None for a record still pending.
    predictions: list[Any]
    probabilities: NotRequired[list[dict[str, float] | None]]  # classification: label -> probability
    scores: NotRequired[list[float | None] | None]  # anomaly: higher is more anomalous
    windows: NotRequired[list[WindowState]]  # sequence config sets only


class Answer(Outputs):
    """The whole answer: the outputs and the version that gave them."""

    model: ModelRef
