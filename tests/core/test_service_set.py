"""ServiceSet: the config sets one process serves, a broken one kept aside with its reason and fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlrm.core.service_set import ServiceSet, expand
from mlrm.errors import ConfigError, NotFoundError, RequestError
from tests.toolkit.files import copy_config_set


def _broken(root: Path, name: str = "broken") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "service.yaml").write_text("name: broken\nalgoritm: random_forest_classifier\n")
    return folder


def test_a_folder_of_sets_stands_for_every_set_in_it_and_a_set_for_itself(tmp_path: Path) -> None:
    a, b = copy_config_set("pcb-inspection", tmp_path), copy_config_set("breast-cancer", tmp_path)
    (tmp_path / "notes").mkdir()  # no service.yaml: not a set
    assert expand([tmp_path]) == [b, a]
    assert expand([a]) == [a]
    assert expand([a, b]) == [a, b]
    assert expand([tmp_path / "missing"]) == [tmp_path / "missing"]  # loading it says what is wrong


def test_a_broken_set_answers_503_with_reason_and_fix_while_the_others_serve(tmp_path: Path) -> None:
    good = copy_config_set("pcb-inspection", tmp_path)
    services = ServiceSet([good, _broken(tmp_path)])
    assert services.names() == ["broken", "pcb-inspection"]
    assert services.only() is None
    assert services.get("pcb-inspection").ready
    with pytest.raises(RequestError) as caught:
        services.get("broken")
    assert caught.value.status == 503
    assert "algoritm: unknown key 'algoritm'" in caught.value.detail
    assert f"Fix: fix {tmp_path / 'broken' / 'service.yaml'}" in caught.value.detail
    with pytest.raises(NotFoundError, match="Did you mean 'pcb-inspection'"):
        services.get("pcb-inspektion")
    listed = {m["name"]: m for m in services.describe()}
    assert listed["pcb-inspection"] == {"name": "pcb-inspection", "path": str(good), "available": True,
                                        "ready": True, "version": 1}  # fmt: skip
    assert listed["broken"]["available"] is False and "mlrm validate" in listed["broken"]["fix"]


def test_a_fixed_set_serves_once_its_service_yaml_changes(tmp_path: Path) -> None:
    air = copy_config_set("air-quality", tmp_path)
    good = (air / "service.yaml").read_text()
    (air / "service.yaml").write_text(good.replace("algorithm:", "algoritm:", 1))
    services = ServiceSet([copy_config_set("pcb-inspection", tmp_path), air])
    started: list[str] = []
    services.listeners.append(lambda service: started.append(service.name))
    with pytest.raises(RequestError):
        services.get("air-quality")
    (air / "service.yaml").write_text(good)
    os.utime(air / "service.yaml", ns=(1, 1))  # a change, whatever the clock's resolution
    assert services.get("air-quality").ready
    assert started == ["air-quality"]
    assert [m["available"] for m in services.describe()] == [True, True]


def test_two_sets_of_one_name_and_no_usable_set_are_refused_with_the_fix(tmp_path: Path) -> None:
    a = copy_config_set("pcb-inspection", tmp_path / "a")
    b = copy_config_set("pcb-inspection", tmp_path / "b")
    with pytest.raises(ConfigError, match="need unique names"):
        ServiceSet([a, b])
    with pytest.raises(ConfigError, match="algoritm"):
        ServiceSet([_broken(tmp_path)]).require_one()
