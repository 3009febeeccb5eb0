"""Training shared by the CLI and the training service."""

from __future__ import annotations

from typing import Any

import pytest

from mlrm.config import ServiceConfig, load_config_set
from mlrm.errors import DataError
from mlrm.storage.versions import VersionStore
from mlrm.tools.datasets import breast_cancer
from mlrm.training import trainer
from tests.toolkit.files import copy_config_set


def test_train_evaluates_and_saves_a_version_with_its_record(config: ServiceConfig, pcb_rows: list[dict]) -> None:
    result = trainer.train(config, pcb_rows[:600])
    assert result.version == 2
    assert result.metrics["f1_macro"] > 0.6
    p = VersionStore(config.learned_dir).parameters(2)
    assert p["data"]["rows"] == 600 and p["data"]["fingerprint"].startswith("sha256:")
    assert p["resolved_config"]["algorithm"]["name"] == "random_forest_classifier"
    assert set(p["timings"]) == {"fit_s", "evaluate_s", "total_s"}


def test_bad_rows_are_rejected_by_pointer_and_the_rest_trains(config: ServiceConfig, pcb_rows: list[dict]) -> None:
    rows: list[dict[str, Any]] = [dict(r) for r in pcb_rows[:200]]
    rows[3]["volume_pct"] = "lots"
    rows[5]["result"] = "broken"
    result = trainer.train(config, rows, write=False)
    assert result.rows == 198
    assert [e.pointer for e in result.rejected] == ["/rows/3/volume_pct", "/rows/5/result"]


def test_too_few_rows_says_so(config: ServiceConfig, pcb_rows: list[dict]) -> None:
    with pytest.raises(DataError, match="only 5 usable rows"):
        trainer.train(config, pcb_rows[:5])


def test_same_data_same_seed_same_fingerprint_and_split(config: ServiceConfig, pcb_rows: list[dict]) -> None:
    a, b = trainer.dataset(config, pcb_rows[:300]), trainer.dataset(config, pcb_rows[:300])
    assert a.fingerprint() == b.fingerprint()
    (_, hold_a), (_, hold_b) = trainer.split(config, a), trainer.split(config, b)
    assert (hold_a.X == hold_b.X).all() and len(hold_a) == 60


def test_real_data_trains_well(tmp_path: Any) -> None:
    config = load_config_set(copy_config_set("breast-cancer", tmp_path, learned=False))
    result = trainer.train(config, breast_cancer())
    assert result.metrics["f1_macro"] > 0.93


def test_csv_extra_columns_are_ignored_and_named(config: ServiceConfig, pcb_rows: list[dict]) -> None:
    rows = [{**{k: str(v) for k, v in r.items()}, "timestamp": "2026-01-01T00:00:00"} for r in pcb_rows[:100]]
    data = trainer.dataset(config, rows, strings=True)
    assert len(data) == 100 and data.ignored == ["timestamp"] and not data.rejected
    json_rows = [{**r, "timestamp": 1} for r in pcb_rows[:3]]
    assert trainer.dataset(config, json_rows).rejected[0].pointer == "/rows/0/timestamp"
