"""`mlrm init`: every template validates, fits the data `mlrm data` makes for
it, and the printed next commands work as printed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlrm.config import load_config_set
from mlrm.errors import MlrmError
from mlrm.tools.datasets import GENERATORS
from mlrm.tools.scaffold import SCHEMA_DIR, TEMPLATES, init, schema_line, write_schema
from mlrm.training import trainer
from tests.toolkit.files import ROOT
from tests.toolkit.processes import env, mlrm_args


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_template_validates_and_trains_on_its_sample_data(tmp_path: Path, kind: str) -> None:
    folder = init(f"my-{kind}", kind, tmp_path / "configs")
    config = load_config_set(folder)
    assert config.name == f"my-{kind}"
    text = (folder / "service.yaml").read_text()
    assert text.count("\n#") + text.startswith("#") >= 5, "a template explains itself in comments"
    rows = GENERATORS[TEMPLATES[kind].data](rows=600, seed=3)
    result = trainer.train(config, rows, write=False)
    assert result.rows == 600 and not result.rejected
    score = result.metrics[config.metric]
    if config.task == "classification":
        assert score > 0.8, result.metrics
    elif config.task == "regression":
        assert result.metrics["r2"] > 0.3, result.metrics  # clearly better than guessing the mean
    else:
        assert 0 <= score < 0.1, result.metrics  # share of held-out readings flagged


def test_init_writes_the_schema_its_first_line_names_and_a_copy_still_finds_it(tmp_path: Path) -> None:
    sets = tmp_path / "sets"  # config sets kept outside any project
    folder = init("pump", "classification", sets)
    packaged = (ROOT / "mlrm" / "schema" / "service.schema.json").read_bytes()
    assert (folder / "service.yaml").read_text().splitlines()[0] == schema_line()
    assert (sets / SCHEMA_DIR / "service.schema.json").read_bytes() == packaged
    assert write_schema(sets) is None  # already current: left alone

    def mlrm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60)

    other = tmp_path / "elsewhere"
    assert mlrm("schema", "--write", str(other)).stdout == f"wrote {other / SCHEMA_DIR / 'service.schema.json'}\n"
    assert mlrm("schema", "--write", str(other)).stdout.endswith("service.schema.json is current\n")
    for copy in (sets / "pump-2", other / "pump"):
        subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
        line = (copy / "service.yaml").read_text().splitlines()[0]
        assert (copy / line.split("$schema=", 1)[1]).read_bytes() == packaged


def test_init_prints_the_next_three_commands_and_validate_accepts_every_template(tmp_path: Path) -> None:
    def mlrm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60)

    for kind in TEMPLATES:
        init(f"new-{kind}", kind, tmp_path / "configs")
    out = mlrm("init", "pump", "--template", "classification").stdout
    assert (
        f"Editors check it against {Path('configs', SCHEMA_DIR, 'service.schema.json')} (named on its first line)"
        in out
    )
    commands = [line.split("#")[0].strip() for line in out.splitlines() if line.startswith("  mlrm ")]
    assert commands == [
        "mlrm data machine-condition --output pump.csv",
        "mlrm train configs/pump --data pump.csv",
        "mlrm serve configs/pump --port 8000",
    ]
    sets = [str(p.parent) for folder in (tmp_path / "configs", ROOT / "configs") for p in folder.glob("*/service.yaml")]
    validated = subprocess.run(
        mlrm_args("validate", *sorted(sets)), capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60
    )
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.count("ok: ") == len(TEMPLATES) + 1 + len(list((ROOT / "configs").glob("*/service.yaml")))
    with pytest.raises(MlrmError, match="already exists. Pick another name, or pass --force"):
        init("pump", "classification", tmp_path / "configs")
    with pytest.raises(MlrmError, match="'9 lives' is not a valid name"):
        init("9 lives", "classification", tmp_path / "configs")
