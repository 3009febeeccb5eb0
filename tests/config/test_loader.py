"""Config sets: every broken one fails with file, line, key path and the fix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlrm.config import build_schema, load_config_set
from mlrm.errors import ConfigError
from tests.servers import ROOT, env, mlrm_args

BROKEN = Path(__file__).parent / "broken"
CASES = sorted(p.name for p in BROKEN.iterdir() if p.is_dir())


def test_there_are_at_least_fifteen_broken_config_sets() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES)
def test_broken_config_set_names_the_problem(case: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_set(BROKEN / case)
    message = str(caught.value)
    assert str(BROKEN / case / "service.yaml") in message
    for expected in (BROKEN / case / "expect.txt").read_text().splitlines():
        assert expected in message, f"{expected!r} not in:\n{message}"


def test_validate_exits_2_without_traceback() -> None:
    result = subprocess.run(
        mlrm_args("validate", str(BROKEN / "misspelt-algorithm")), capture_output=True, text=True, env=env(), cwd=ROOT
    )
    assert result.returncode == 2
    assert "Did you mean 'random_forest_classifier' or 'random_forest_regressor'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_folder_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no service.yaml here. Pass the config set's folder"):
        load_config_set(tmp_path)


def test_defaults_are_filled_and_required_follows_default() -> None:
    config = load_config_set(ROOT / "configs" / "pcb-inspection")
    assert config.section("limits") == {"max_instances": 1000, "max_body_bytes": 1048576}
    assert config.section("training")["triggers"] == {"new_samples": None, "interval": None}
    by_name = {f.name: f for f in config.inputs}
    assert by_name["volume_pct"].required and not by_name["board_thickness_mm"].required


@pytest.mark.parametrize("folder", sorted((ROOT / "configs").iterdir()), ids=lambda p: p.name)
def test_every_shipped_config_set_validates_and_points_editors_at_the_schema(folder: Path) -> None:
    load_config_set(folder)
    first = (folder / "service.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../mlrm/schema/service.schema.json"


def test_shipped_schema_file_is_current() -> None:
    shipped = json.loads((ROOT / "mlrm" / "schema" / "service.schema.json").read_text())
    assert shipped == build_schema(), "regenerate: python -m mlrm schema -o mlrm/schema/service.schema.json"
