"""`mlrm training-service` and `mlrm train --remote` refuse bad input before
starting anything, saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrm.cli import main
from tests.conftest import copy_config_set
from tests.servers import free_port
from tests.training_service.conftest import configure


def test_a_missing_config_root_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["training-service", "--config-root", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_every_bad_config_set_under_the_root_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_config_set("breast-cancer", tmp_path / "a", learned=False)
    twin = copy_config_set("breast-cancer", tmp_path / "b", learned=False)
    (tmp_path / "root").mkdir()
    (tmp_path / "a" / "breast-cancer").rename(tmp_path / "root" / "one")
    twin.rename(tmp_path / "root" / "two")
    broken = copy_config_set("pcb-inspection", tmp_path / "root", learned=False)
    configure(broken, training={"triggers": {"new_samples": 0}})
    assert main(["training-service", "--config-root", str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert "2 problems in config" in err
    assert "pcb-inspection/service.yaml" in err and "training.triggers.new_samples" in err
    assert "'breast-cancer' is also the name of" in err


def test_unsupported_store_says_what_to_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_config_set("breast-cancer", tmp_path)
    assert main(["training-service", "--config-root", str(tmp_path), "--store", "postgresql://db/mlrm"]) == 1
    assert "sqlite:///" in capsys.readouterr().err


def test_train_needs_data_or_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "configs/breast-cancer"]) == 2
    assert "--remote URL" in capsys.readouterr().err
    assert main(["train", "breast-cancer", "--remote", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the training service" in capsys.readouterr().err
