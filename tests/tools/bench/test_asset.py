"""The virtual asset makes data every shipped config set accepts: every record valid, every label present."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrm.config import load_config_set
from mlrm.tools.bench import asset
from mlrm.training import trainer
from tests.toolkit.files import CONFIGS

SETS = sorted(p.name for p in CONFIGS.iterdir() if (p / "service.yaml").is_file())


@pytest.mark.parametrize("name", SETS)
def test_generated_records_are_all_accepted(name: str) -> None:
    config = load_config_set(CONFIGS / name)
    records = asset.generate(config, rows=120, seed=3)
    data = trainer.dataset(config, records)
    assert data.rejected == [] and len(data) > 0
    assert trainer.absent_labels(config, records, data) == []
    assert asset.generate(config, rows=120, seed=3) == records  # the seed decides everything


@pytest.mark.parametrize("name", SETS)
def test_instances_are_inputs_only(name: str) -> None:
    config = load_config_set(CONFIGS / name)
    instances = asset.instances(config, asset.generate(config, rows=50, seed=1), 7)
    assert len(instances) == 7
    names = {f.name for f in config.inputs}
    if config.sequence is None:
        assert all(set(i) <= names for i in instances)
    else:
        assert all(len(i["window"]) == config.sequence.window for i in instances)


def test_csv_round_trip_keeps_types(tmp_path: Path) -> None:
    config = load_config_set(CONFIGS / "air-quality")
    records = asset.generate(config, rows=20, seed=5)
    asset.to_csv(records, tmp_path / "aq.csv")
    back = asset.read_csv(config, tmp_path / "aq.csv")
    assert [r["workday"] for r in back] == [r["workday"] for r in records]
    assert [r["occupancy"] for r in back] == [r["occupancy"] for r in records]
