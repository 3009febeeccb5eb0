"""Learned state: atomic versions, digest checks, rollback, crash safety."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlrm.errors import StateError
from mlrm.storage.versions import PARAMETERS, VersionStore, sha256
from tests.toolkit.files import ROOT
from tests.toolkit.processes import env, stop_when
from tests.toolkit.waiting import wait_until


def test_write_read_and_rollback(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "learned")
    assert store.current() is None
    v1 = store.write({"metrics": {"f1": 0.5}}, {"model.bin": b"one"})
    v2 = store.write({"metrics": {"f1": 0.7}}, {"model.bin": b"two"})
    assert (v1, v2, store.current()) == (1, 2, 2)
    assert store.read(2).files == {"model.bin": b"two"}
    store.set_current(1)
    assert store.current() == 1 and store.read(1).parameters["metrics"] == {"f1": 0.5}
    with pytest.raises(StateError, match="version 9 does not exist"):
        store.set_current(9)


def test_candidate_can_be_stored_without_becoming_current(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    store.write({}, {"m": b"a"})
    assert store.write({}, {"m": b"b"}, make_current=False) == 2
    assert store.current() == 1


def test_tampered_artifact_is_never_handed_over(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    store.write({}, {"model.joblib": b"trusted"})
    (store.path_of(1) / "model.joblib").write_bytes(b"evil")
    with pytest.raises(StateError, match="sha256 does not match"):
        store.read(1)


def pinned(store: VersionStore) -> str:
    return str(yaml.safe_load(store.current_file().read_text())["parameters_sha256"])


def test_current_yaml_pins_the_digest_of_the_parameters_it_points_at(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    store.write({"metrics": {"f1": 0.5}}, {"m": b"a"})
    store.write({"metrics": {"f1": 0.7}}, {"m": b"b"})
    for version in (2, 1, 2):  # as written, then after each rollback
        if version != store.current():
            store.set_current(version)
        assert pinned(store) == sha256((store.path_of(version) / PARAMETERS).read_bytes())
        record = store.read_current()
        assert record is not None and record.version == version and record.parameters_sha256 == pinned(store)


def test_a_changed_parameters_file_is_not_loaded_and_the_error_says_how_to_recover(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "learned")
    store.write({"metrics": {"f1": 0.5}}, {"m": b"a"})
    store.write({"metrics": {"f1": 0.7}, "scale": [3.25]}, {"m": b"b"})
    file = store.path_of(2) / PARAMETERS
    expected = sha256(file.read_bytes())
    file.write_bytes(file.read_bytes().replace(b"- 3.25", b"- 7.25"))  # one flipped bit, still valid YAML
    with pytest.raises(StateError) as caught:
        store.read_current()
    message = str(caught.value)
    assert str(file) in message and expected in message and sha256(file.read_bytes()) in message
    assert f"mlrm rollback {tmp_path} --to N (versions here: 1, 2), or retrain" in message
    assert store.read(2).parameters["scale"] == [7.25]  # listing versions still reads it, unchecked
    store.set_current(1)
    record = store.read_current()
    assert record is not None and record.version == 1


def test_unreadable_learned_state_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    store.write({}, {"m": b"a"})
    (store.path_of(1) / PARAMETERS).write_bytes(b"version: [1\n\xff")
    with pytest.raises(StateError, match=f"{store.path_of(1) / PARAMETERS} is corrupt"):
        store.read(1)
    store.current_file().write_text("version: {")
    with pytest.raises(StateError, match="current.yaml is corrupt: expected 'version: N'"):
        store.current()


def test_prune_keeps_the_newest_and_the_current(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    for i in range(5):
        store.write({}, {"m": bytes([i])})
    store.set_current(1)
    assert store.prune(2) == [2, 3]
    assert store.versions() == [1, 4, 5]


def test_leftovers_of_a_crashed_writer_are_ignored_then_swept(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    store.write({}, {"m": b"good"})
    half = store.versions_dir / ".tmp-crashed"
    half.mkdir()
    (half / "m").write_bytes(b"half")
    (tmp_path / ".current.yaml.x.tmp").write_text("version: 2")
    assert store.current() == 1 and store.versions() == [1]
    store.write({}, {"m": b"next"})
    assert not half.exists() and store.current() == 2


WRITER = """
import sys
from mlrm.storage.versions import VersionStore
store = VersionStore(sys.argv[1])
for i in range(10_000):
    store.write({"i": i}, {"model.bin": bytes([i % 251]) * 2_000_000})
"""


def half_written_folder(store: VersionStore) -> bool:
    return any(store.versions_dir.glob(".tmp-*"))


def renamed_not_current(store: VersionStore) -> bool:
    return max(store.versions(), default=0) > (store.current() or 0)


def current_being_replaced(store: VersionStore) -> bool:
    return any(store.root.glob(".current.yaml.*.tmp"))


@pytest.mark.parametrize(
    ("situation", "current_is_newest"),
    [(half_written_folder, True), (renamed_not_current, False), (current_being_replaced, False)],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_sigkill_during_writes_leaves_a_whole_current_version(
    tmp_path: Path, situation: Callable[[VersionStore], bool], current_is_newest: bool
) -> None:
    """Kill the writer frozen in one step of write(): current.yaml names a whole version."""
    root = tmp_path / "learned"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], env=env(), cwd=ROOT)
    try:
        store = VersionStore(root)
        wait_until(lambda: store.current() is not None, 60, "a first version written")
        stop_when(proc.pid, lambda: situation(store), 60, situation.__name__)
    finally:
        proc.kill()
        proc.wait(10)
    store = VersionStore(root)
    current = store.current()
    assert current is not None
    assert store.read(current).parameters["version"] == current  # verifies every digest
    assert (current == max(store.versions())) is current_is_newest, (current, store.versions())
    for version in store.versions():
        store.read(version)
