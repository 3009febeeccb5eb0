"""A gateway's config set follows a real training service: a new current
version is fetched, checked and made current; a rollback at the centre moves
it back; a version whose bytes or signature do not check out is refused and
the gateway keeps the one it had."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mlrm.errors import RemoteError, StateError
from mlrm.storage import signatures
from mlrm.storage.versions import VersionStore
from mlrm.training.follow import Follower, Following, follower_of
from mlrm.training.remote import TrainingServiceClient
from tests.toolkit.files import configure
from tests.toolkit.processes import Process, free_port
from tests.toolkit.training import NAME, republish

Start = Callable[..., tuple[str, Process]]


@pytest.fixture
def gateway_set(root: Path, tmp_path: Path) -> Path:
    """The gateway's copy of the centre's config set, as shipped to both."""
    return Path(shutil.copytree(root / NAME, tmp_path / "gateway" / NAME))


def test_follows_new_versions_and_rollbacks(root: Path, gateway_set: Path, training_service: Start) -> None:
    url, _ = training_service(root)
    centre, here = VersionStore(root / NAME / "learned"), VersionStore(gateway_set / "learned")
    follower = Follower(NAME, gateway_set / "learned", url)
    assert follower.check() is None  # the same version 1 on both sides
    assert republish(centre) == 2
    said = follower.check()
    files = sorted(p.name for p in centre.path_of(2).iterdir())
    assert said == f"version 2 of {NAME} from {url}: {len(files)} files, every sha256 verified; now current", said
    assert here.pointer() == centre.pointer() and sorted(p.name for p in here.path_of(2).iterdir()) == files
    for name in files:
        assert (here.path_of(2) / name).read_bytes() == (centre.path_of(2) / name).read_bytes()
    assert follower.check() is None  # 304: nothing fetched
    centre.set_current(1)
    assert follower.check() == f"version 1 of {NAME} from {url}: held here already, verified; now current again"
    assert here.current() == 1


def test_refuses_a_version_whose_files_do_not_match_and_keeps_its_own(
    root: Path, gateway_set: Path, training_service: Start
) -> None:
    url, _ = training_service(root)
    centre, here = VersionStore(root / NAME / "learned"), VersionStore(gateway_set / "learned")
    republish(centre)
    artifact = next(iter(centre.parameters(2)["artifacts"]))
    (centre.path_of(2) / artifact).write_bytes(b"torn copy")
    with pytest.raises(StateError, match=f"{artifact} has sha256 .* as parameters.yaml says"):
        Follower(NAME, gateway_set / "learned", url).check()
    assert here.current() == 1 and here.versions() == [1]
    assert not list(here.versions_dir.glob(".tmp-*"))


def test_with_a_verify_key_only_signed_versions_are_taken(
    root: Path, gateway_set: Path, training_service: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = signatures.generate(tmp_path / "keys")
    url, _ = training_service(root)
    centre, here = VersionStore(root / NAME / "learned"), VersionStore(gateway_set / "learned")
    first = centre.read(1)
    monkeypatch.setenv(signatures.VERIFY_ENV, str(public))
    republish(centre, first)  # unsigned: the training side had no key
    with pytest.raises(StateError, match="signature.yaml is missing"):
        Follower(NAME, gateway_set / "learned", url).check()
    monkeypatch.setenv(signatures.SIGNING_ENV, str(private))
    republish(centre, first)
    said = Follower(NAME, gateway_set / "learned", url).check()
    files = len(list(centre.path_of(3).iterdir()))  # signature.yaml among them
    assert said is not None and f"{files} files, every sha256 and the signature verified" in said, said
    assert here.versions() == [1, 3] and here.current() == 3


def test_an_unreachable_centre_is_said_once_and_its_return_once(gateway_set: Path) -> None:
    events: list[str] = []
    follower = Follower(NAME, gateway_set / "learned", f"http://127.0.0.1:{free_port()}", timeout=1)
    following = Following([follower], interval=0.01, say=events.append)
    due = following._due[0]
    for _ in range(3):
        following.check(due)
    assert due.failures == 3 and len(events) == 1, events
    assert "cannot reach" in events[0] and "still serving version 1" in events[0]
    [report] = following.report()  # what `mlrm status` shows: since the first failed ask
    assert report["reachable"] is False and report["unreachable_since"] <= report["last_check"]
    assert report["version"] == 1 and "cannot reach" in report["last_error"]
    with pytest.raises(RemoteError):
        follower.check()


def test_a_download_larger_than_announced_is_cut_off(root: Path, training_service: Start) -> None:
    url, _ = training_service(root)
    with TrainingServiceClient(url) as client:
        item = next(f for f in client.bundle(NAME, 1)["files"] if f["name"] == "parameters.yaml")
        assert len(client.download(item["href"], item["size"])) == item["size"]
        with pytest.raises(RemoteError, match=f"more than the {item['size'] - 1} bytes announced"):
            client.download(item["href"], item["size"] - 1)


def test_keeps_training_keep_versions_and_fetches_a_pruned_one_again(
    root: Path, gateway_set: Path, training_service: Start
) -> None:
    configure(gateway_set, training={"keep_versions": 2})
    url, _ = training_service(root)
    centre, here = VersionStore(root / NAME / "learned"), VersionStore(gateway_set / "learned")
    follower = follower_of(gateway_set, url)
    assert (follower.name, follower.keep) == (NAME, 2)
    for _ in range(3):
        republish(centre)
        follower.check()
    assert here.versions() == [3, 4] and here.current() == 4
    centre.set_current(1)  # pruned here: fetched again
    said = follower.check()
    assert said is not None and said.startswith(f"version 1 of {NAME} from {url}: ") and "verified" in said, said
    assert here.current() == 1 and here.versions() == [1, 3, 4]
