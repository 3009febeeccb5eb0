"""Config sets: every broken one fails with file, line, key path and the fix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlrm.config import build_schema, load_config_set
from mlrm.errors import ConfigError
from mlrm.tools.scaffold import SCHEMA_DIR, schema_line
from tests.toolkit.files import ROOT
from tests.toolkit.processes import env, mlrm_args

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
    assert config.section("training")["triggers"] == {
        "new_samples": None, "interval": None, "drift": {"threshold": None, "min_rows": 200},
        "performance": {"max_drop": None, "min_rows": 50},
    }  # fmt: skip
    assert config.section("training")["data"] == {"files": [], "samples": {"last": None, "max_age": None}}
    by_name = {f.name: f for f in config.inputs}
    assert by_name["volume_pct"].required and not by_name["board_thickness_mm"].required


SHIPPED = sorted(p for p in (ROOT / "configs").iterdir() if (p / "service.yaml").is_file())


def editor_schema(service_yaml: Path) -> Path:
    """The file an editor reads for the `$schema=` that the first line names (relative to the YAML file)."""
    first = service_yaml.read_text(encoding="utf-8").splitlines()[0]
    assert first == schema_line(), f"{service_yaml}: the first line must be {schema_line()!r}"
    return service_yaml.parent / first.split("$schema=", 1)[1]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_set_validates_and_points_editors_at_the_schema(folder: Path) -> None:
    load_config_set(folder)
    assert editor_schema(folder / "service.yaml").is_file()


def test_shipped_schema_files_are_current() -> None:
    packaged = ROOT / "mlrm" / "schema" / "service.schema.json"
    assert json.loads(packaged.read_text()) == build_schema(), (
        "regenerate: python -m mlrm schema -o mlrm/schema/service.schema.json"
    )
    # The copies editors read, for config sets in configs/ and in the project folder itself.
    for parent in (ROOT / "configs", ROOT):
        copy = parent / SCHEMA_DIR / "service.schema.json"
        assert copy.read_bytes() == packaged.read_bytes(), f"refresh it: mlrm schema --write {parent}"


def test_a_config_set_copied_with_cp_still_finds_its_schema(tmp_path: Path) -> None:
    project = tmp_path / "project"  # this project's schema copies and config sets, as shipped
    project.mkdir()
    for part in (SCHEMA_DIR, "configs"):
        subprocess.run(["cp", "-r", str(ROOT / part), str(project / part)], check=True)
    # README: `cp -r configs/pcb-inspection my-pcb` in the project folder; or beside the original.
    for copy in (project / "my-pcb", project / "configs" / "my-pcb"):
        subprocess.run(["cp", "-r", str(project / "configs" / "pcb-inspection"), str(copy)], check=True)
        schema = json.loads(editor_schema(copy / "service.yaml").read_text())
        jsonschema.Draft202012Validator(schema).validate(yaml.safe_load((copy / "service.yaml").read_text()))
