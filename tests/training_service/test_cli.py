"""`mlrm training-service` and `mlrm train --remote` refuse bad input before
starting anything, saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrm.cli import main
from tests.toolkit.files import configure, copy_config_set
from tests.toolkit.processes import free_port
from training_service.services import ConfigRoot


def test_a_missing_config_root_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["training-service", "--config-root", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_with_no_usable_config_set_every_problem_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = copy_config_set("pcb-inspection", tmp_path / "root", learned=False)
    configure(broken, training={"triggers": {"new_samples": 0}})
    other = copy_config_set("breast-cancer", tmp_path / "root", learned=False)
    configure(other, training={"holdout": 7})
    assert main(["training-service", "--config-root", str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert "2 problems in config" in err
    assert "pcb-inspection/service.yaml" in err and "training.triggers.new_samples" in err
    assert "breast-cancer/service.yaml" in err and "training.holdout" in err


def test_a_duplicate_name_makes_the_second_set_unavailable(tmp_path: Path) -> None:
    copy_config_set("breast-cancer", tmp_path / "a", learned=False).rename(tmp_path / "one")
    copy_config_set("breast-cancer", tmp_path / "b", learned=False).rename(tmp_path / "two")
    (tmp_path / "root").mkdir()
    (tmp_path / "one").rename(tmp_path / "root" / "one")
    (tmp_path / "two").rename(tmp_path / "root" / "two")
    root = ConfigRoot(tmp_path / "root")
    assert root.names() == ["breast-cancer"]
    [twin] = root.describe_unavailable()
    assert twin["name"] == "two" and "'breast-cancer' is also the name of" in twin["reason"]


def test_unsupported_store_says_what_to_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_config_set("breast-cancer", tmp_path)
    assert main(["training-service", "--config-root", str(tmp_path), "--store", "mysql://db/mlrm"]) == 1
    said = capsys.readouterr().err
    assert "sqlite:///" in said and "postgresql://" in said


def test_an_unreachable_postgresql_store_is_named_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed; pip install 'mlrm[postgresql]'")
    copy_config_set("breast-cancer", tmp_path)
    store = f"postgresql://mlrm:hunter2@127.0.0.1:{free_port()}/mlrm"
    assert main(["training-service", "--config-root", str(tmp_path), "--store", store]) == 1
    said = capsys.readouterr().err
    assert "cannot connect to the training store postgresql://mlrm:***@127.0.0.1" in said and "hunter2" not in said


def test_train_needs_data_or_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "configs/breast-cancer"]) == 2
    assert "--remote URL" in capsys.readouterr().err
    assert main(["train", "breast-cancer", "--remote", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the training service" in capsys.readouterr().err
