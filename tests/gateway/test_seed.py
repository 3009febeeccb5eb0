"""The init container's step: service.yaml from a ConfigMap every start, the image's learned/ once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrm.gateway.seed import main
from tests.toolkit.files import CONFIGS


def config_map_mount(folder: Path, text: str) -> Path:
    """A folder laid out as kubelet mounts a ConfigMap: the files are links into a hidden ..data folder."""
    data = folder / "..2026_12_01_00_00_00.000000001"
    data.mkdir(parents=True)
    (data / "service.yaml").write_text(text)
    (folder / "..data").symlink_to(data.name)
    (folder / "service.yaml").symlink_to("..data/service.yaml")
    return folder


def test_seeds_service_yaml_every_start_and_learned_once(tmp_path: Path) -> None:
    text = (CONFIGS / "pcb-inspection" / "service.yaml").read_text()
    files = config_map_mount(tmp_path / "files", text)
    dest = tmp_path / "volume" / "pcb-inspection"
    learned = CONFIGS / "pcb-inspection" / "learned"
    assert main([str(files), str(dest), "--learned", str(learned)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["learned", "service.yaml"]  # no ..data
    assert (dest / "learned" / "current.yaml").read_bytes() == (learned / "current.yaml").read_bytes()

    (dest / "learned" / "current.yaml").write_text("version: 7\n")  # state the pod wrote since
    (files / "..data" / "service.yaml").write_text(text + "# changed\n")  # a new ConfigMap
    assert main([str(files), str(dest), "--learned", str(learned)]) == 0
    assert (dest / "service.yaml").read_text().endswith("# changed\n")
    assert (dest / "learned" / "current.yaml").read_text() == "version: 7\n"
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_a_set_not_in_the_image_starts_without_learned(tmp_path: Path) -> None:
    files = config_map_mount(tmp_path / "files", "name: x\n")
    assert main([str(files), str(tmp_path / "x"), "--learned", str(tmp_path / "absent")]) == 0
    assert not (tmp_path / "x" / "learned").exists()


def test_no_service_yaml_is_an_error_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), str(tmp_path / "x")]) == 2
    assert "mount the config set's ConfigMap" in capsys.readouterr().err
