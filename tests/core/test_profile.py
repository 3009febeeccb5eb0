"""The reference profile of a version (mlrm.core.profile): recorded by training as a digest-checked
artifact, for numbers, categories (one-hot or not), booleans, missing values, regression targets and
windowed sets; served rows counted by Binner land in the very bins training counted."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlrm.config import ServiceConfig, load_config_set
from mlrm.core.model import Model
from mlrm.core.profile import PROFILE, Binner
from mlrm.core.service import Service
from mlrm.errors import StateError
from mlrm.storage.versions import PARAMETERS, VersionStore
from mlrm.training import trainer

TABLE: dict[str, Any] = {
    "name": "oven",
    "inputs": {
        "temp_c": {"type": "number", "required": False},
        "line": {"type": "category", "values": ["a", "b", "c"], "required": False},
        "door_open": {"type": "boolean"},
    },
    "target": {"name": "energy_kwh", "kind": "regression"},
    "algorithm": {"name": "ridge"},
    "training": {"min_rows": 10},
}


def config_set(tmp_path: Path, raw: dict[str, Any], **preprocessing: Any) -> ServiceConfig:
    folder = tmp_path / raw["name"]
    folder.mkdir(exist_ok=True)
    (folder / "service.yaml").write_text(yaml.safe_dump({**raw, "preprocessing": preprocessing}))
    return load_config_set(folder)


def oven_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"temp_c": rng.gauss(200, 20), "line": rng.choice("aab"), "door_open": i % 5 == 0}
        row["energy_kwh"] = row["temp_c"] / 50 + (2.0 if row["door_open"] else 0.0)
        if i % 10 == 0:
            row.pop("temp_c")  # missing: counted apart from the bins
        if i % 25 == 0:
            row.pop("line")
        rows.append(row)
    return rows


@pytest.mark.parametrize("one_hot", [True, False], ids=["one-hot", "codes"])
def test_profile_of_numbers_categories_booleans_missing_values_and_a_regression_target(
    tmp_path: Path, one_hot: bool
) -> None:
    config = config_set(tmp_path, TABLE, one_hot=one_hot)
    result = trainer.train(config, oven_rows(500))
    profile = result.model.profile
    assert profile is not None and profile["rows"] == 400 and profile["holdout_rows"] == 100
    temp, line, door = (profile["inputs"][k] for k in ("temp_c", "line", "door_open"))
    assert temp["kind"] == "number" and len(temp["edges"]) == 9 and temp["edges"] == sorted(temp["edges"])
    assert sum(temp["counts"]) + temp["missing"] == 400 and 30 <= temp["missing"] <= 50
    assert max(temp["counts"]) - min(temp["counts"]) <= 2  # deciles: ten bins of about equal share
    assert line["values"] == ["a", "b", "c"] and line["counts"][2] == 0 and line["missing"] > 0
    assert sum(line["counts"]) + line["missing"] == 400 and line["counts"][0] > line["counts"][1] > 0
    assert door["values"] == [False, True] and door["missing"] == 0 and sum(door["counts"]) == 400
    assert profile["target"]["kind"] == "number" and sum(profile["target"]["counts"]) == 400
    assert sum(profile["predictions"]["counts"]) == 100

    # Served rows are counted by the rules training counted by: the training rows give its counts back.
    train_part, _ = trainer.split(config, trainer.dataset(config, oven_rows(500)))
    binner = Binner(config, profile)
    counts = binner.count(train_part.X, np.zeros(len(train_part)))
    for i, name in enumerate(binner.names):
        stored = profile["inputs"][name]
        got = counts[binner.offsets[i] : binner.offsets[i] + len(stored["counts"]) + 1]
        assert got.tolist() == [*stored["counts"], stored["missing"]], name
    assert counts[binner.rows_slot] == 400


def test_profile_is_an_artifact_whose_digest_is_checked(tmp_path: Path) -> None:
    config = config_set(tmp_path, TABLE)
    trainer.train(config, oven_rows(200))
    store = VersionStore(config.learned_dir)
    folder = store.path_of(1)
    parameters = yaml.safe_load((folder / PARAMETERS).read_text())
    assert PROFILE in parameters["artifacts"]
    assert Model.from_record(config, store.read(1)).profile == Service(config).model.profile  # type: ignore[union-attr]

    stored = (folder / PROFILE).read_bytes()
    (folder / PROFILE).write_bytes(stored.replace(b'"rows":160', b'"rows":161'))
    with pytest.raises(StateError, match=f"{PROFILE}: sha256 does not match"):
        store.read(1)
    service = Service(config)
    assert not service.ready and f"{PROFILE}: sha256 does not match" in (service.load_error or "")


def test_windowed_set_profiles_each_feature_over_the_records_of_its_windows(tmp_path: Path) -> None:
    raw = {
        "name": "press",
        "inputs": {
            "force": {"type": "number"},
            "speed": {"type": "number"},
            "mode": {"type": "category", "values": ["x", "y"]},
        },  # fmt: skip
        "target": {"name": "state", "kind": "classification", "labels": ["ok", "jam"]},
        "sequence": {"window": 4, "step": 2, "order_by": "t", "inputs": ["force", "mode"]},
        "algorithm": {"name": "random_forest_classifier", "hyperparameters": {"n_estimators": 5}},
        "training": {"min_rows": 2},
    }
    config = config_set(tmp_path, raw)
    rows = [{"t": i, "force": math.sin(i), "speed": 1.0, "mode": "xy"[i % 3 == 0], "state": "jam" if i % 4 == 3
             else "ok"} for i in range(400)]  # fmt: skip
    profile = trainer.train(config, rows).model.profile
    assert profile is not None and sorted(profile["inputs"]) == ["force", "mode"]  # what the model reads
    windows = profile["rows"] // 4
    assert profile["rows"] == windows * 4 and sum(profile["inputs"]["force"]["counts"]) == profile["rows"]
    assert profile["target"]["values"] == ["ok", "jam"] and sum(profile["target"]["counts"]) == windows
    assert profile["predictions"]["values"] == ["ok", "jam"]

    service = Service(config)
    service.predict([{"window": [{"t": j, "force": 0.5, "speed": 1.0, "mode": "x"} for j in range(4)]}])
    report = service.drift_report()
    assert report["available"] and report["window"]["rows"] == 4 and report["window"]["enough"] is False
    assert report["inputs"]["mode"]["level"] == "insufficient"
