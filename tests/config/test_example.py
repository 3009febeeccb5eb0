"""mlrm.config.example: a request every config set accepts, made from its inputs alone."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from mlrm import algorithms
from mlrm.config import load_config_set
from mlrm.config.example import example_body, example_value
from mlrm.config.service_config import Feature
from mlrm.core.encoding import RowEncoder
from mlrm.core.service import Service
from mlrm.rest.openapi import instance_schema
from mlrm.tools.scaffold import TEMPLATES, init
from tests.toolkit.files import ROOT

SHIPPED = sorted(p for p in (ROOT / "configs").iterdir() if (p / "service.yaml").is_file())


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_set_answers_its_example(folder: Path) -> None:
    config = load_config_set(folder)
    if algorithms.requirement_of(config.algorithm):
        pytest.importorskip(str(algorithms.requirement_of(config.algorithm)))
    body = example_body(config, instances=2)
    answer = Service(config).predict(body["instances"])
    assert len(answer["predictions"]) == 2 and None not in answer["predictions"]  # a window is answered at once


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_template_accepts_its_example(tmp_path: Path, kind: str) -> None:
    config = load_config_set(init(f"my-{kind}", kind, tmp_path))
    (instance,) = example_body(config)["instances"]
    jsonschema.Draft202012Validator(instance_schema(config)).validate(instance)
    record = instance["window"][0] if "window" in instance else instance
    assert RowEncoder(config).encode([record]).shape[0] == 1  # the checked encoder takes it too, not only the schema


def feature(type: str, **kw: object) -> Feature:
    return Feature(name="x", type=type, required=True, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("f", "value"),
    [
        (feature("number", min=0, max=300), 150.0),
        (feature("number", min=-500, max=500, default=2.5), 2.5),
        (feature("number", min=20), 20.0),
        (feature("number", max=-40), -40.0),
        (feature("number"), 0.0),
        (feature("integer", min=0), 0),
        (feature("integer", min=0.5, max=1.4), 1),
        (feature("integer", min=1, max=2), 2),
        (feature("boolean"), True),
        (feature("category", values=("ok", "worn")), "ok"),
    ],
)
def test_a_value_inside_what_each_input_declares(f: Feature, value: object) -> None:
    assert example_value(f) == value and type(example_value(f)) is type(value)
