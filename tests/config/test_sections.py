"""Typed config sections hold exactly what the loader resolved, for every shipped set and template."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from mlrm.config import ServiceConfig, load_config_set
from mlrm.config.sections import ARRIVAL
from mlrm.tools.scaffold import TEMPLATES, init

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (ROOT / "configs").iterdir() if (p / "service.yaml").is_file())
# The sections with a typed view that mirrors them key for key.
MIRRORED = ("training", "serving", "limits", "preprocessing")


def shipped_or_template(source: str, tmp_path: Path) -> ServiceConfig:
    kind, _, name = source.partition(":")
    if kind == "template":
        return load_config_set(init(f"from-{name}", name, tmp_path))
    return load_config_set(ROOT / "configs" / name)


CASES = [f"configs:{name}" for name in SHIPPED] + [f"template:{kind}" for kind in sorted(TEMPLATES)]


def test_every_shipped_set_and_template_is_covered() -> None:
    assert len(SHIPPED) >= 5 and len(TEMPLATES) >= 4
    assert any(load_config_set(ROOT / "configs" / name).sequence for name in SHIPPED), "no set with a sequence"


@pytest.mark.parametrize("source", CASES)
def test_typed_sections_equal_the_resolved_dicts(source: str, tmp_path: Path) -> None:
    config = shipped_or_template(source, tmp_path)
    for name in MIRRORED:
        typed = getattr(config, name)
        assert asdict(typed) == config.section(name), f"{source}: {name}"
        assert getattr(config, name) is typed, "built once, then cached"
    assert config.metric == config.section("training")["metric"]


@pytest.mark.parametrize("source", CASES)
def test_the_sequence_spec_follows_the_sequence_section(source: str, tmp_path: Path) -> None:
    config = shipped_or_template(source, tmp_path)
    section = config.section("sequence")
    spec = config.sequence
    if not section:
        assert spec is None
        return
    assert spec is not None
    assert (spec.window, spec.step) == (section["window"], section["step"])
    assert spec.inputs == tuple(section.get("inputs") or [f.name for f in config.inputs])
    assert spec.order_by == (None if section["order_by"] == ARRIVAL else section["order_by"])
    assert spec.stream == section.get("stream")
    assert asdict(spec.buffer) == section["buffer"]
