"""`mlrm init`: every template validates, fits the data `mlrm data` makes for
it, and the printed next commands work as printed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlrm import training
from mlrm.config import load_config_set
from mlrm.datasets import GENERATORS
from mlrm.errors import MlrmError
from mlrm.scaffold import TEMPLATES, init
from tests.servers import ROOT, env, mlrm_args


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_template_validates_and_trains_on_its_sample_data(tmp_path: Path, kind: str) -> None:
    folder = init(f"my-{kind}", kind, tmp_path / "configs")
    config = load_config_set(folder)
    assert config.name == f"my-{kind}"
    text = (folder / "service.yaml").read_text()
    assert text.count("\n#") + text.startswith("#") >= 5, "a template explains itself in comments"
    rows = GENERATORS[TEMPLATES[kind].data](rows=600, seed=3)
    result = training.train(config, rows, write=False)
    assert result.rows == 600 and not result.rejected
    score = result.metrics[config.metric]
    if config.task == "classification":
        assert score > 0.8, result.metrics
    elif config.task == "regression":
        assert result.metrics["r2"] > 0.3, result.metrics  # clearly better than guessing the mean
    else:
        assert 0 <= score < 0.1, result.metrics  # share of held-out readings flagged


def test_template_in_the_project_points_editors_at_the_shipped_schema(tmp_path: Path) -> None:
    folder = init("pump", "classification", ROOT / "configs" / ".." / "var" / "init-test")
    try:
        first = (folder / "service.yaml").read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../../../mlrm/schema/service.schema.json"
    finally:
        import shutil

        shutil.rmtree(ROOT / "var" / "init-test")


def test_init_prints_the_next_three_commands_and_validate_accepts_every_template(tmp_path: Path) -> None:
    def mlrm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60)

    for kind in TEMPLATES:
        init(f"new-{kind}", kind, tmp_path / "configs")
    out = mlrm("init", "pump", "--template", "classification").stdout
    commands = [line.split("#")[0].strip() for line in out.splitlines() if line.startswith("  mlrm ")]
    assert commands == [
        "mlrm data machine-condition --output pump.csv",
        "mlrm train configs/pump --data pump.csv",
        "mlrm serve configs/pump --port 8000",
    ]
    validated = subprocess.run(
        mlrm_args("validate", *sorted(str(p) for p in (tmp_path / "configs").iterdir()), *sorted(str(p) for p in (ROOT / "configs").iterdir())),
        capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.count("ok: ") == len(TEMPLATES) + 1 + len(list((ROOT / "configs").iterdir()))
    with pytest.raises(MlrmError, match="already exists. Pick another name, or pass --force"):
        init("pump", "classification", tmp_path / "configs")
    with pytest.raises(MlrmError, match="'9 lives' is not a valid name"):
        init("9 lives", "classification", tmp_path / "configs")
