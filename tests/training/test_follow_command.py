"""`mlrm follow`: the follower of `mlrm up` on its own (as in a Kubernetes pod), against a real training service.

A version promoted at the centre arrives in the follower's config set; `--once` checks once and says how
it went, with a non-zero exit and a message naming the centre when the centre cannot be reached."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from mlrm.storage.versions import VersionStore
from tests.toolkit.processes import Process, free_port, mlrm, mlrm_args
from tests.toolkit.training import NAME, republish

Start = Callable[..., tuple[str, Process]]


def test_a_version_promoted_at_the_centre_arrives(
    root: Path, tmp_path: Path, training_service: Start, spawn: Callable[..., Process]
) -> None:
    here_set = Path(shutil.copytree(root / NAME, tmp_path / "gateway" / NAME))
    url, _ = training_service(root)
    centre, here = VersionStore(root / NAME / "learned"), VersionStore(here_set / "learned")
    once = mlrm("follow", str(here_set), "--training-url", url, "--once")
    assert once.returncode == 0, once.stdout + once.stderr
    assert f"{NAME}: {url} answers; version 1 is current here" in once.stdout
    follower = spawn(mlrm_args("follow", str(here_set), "--training-url", url, "--interval", "0.2"), name="follow")
    follower.wait_until(lambda: f"following {url} for {NAME}" in follower.output(), what="following")
    assert republish(centre) == 2
    follower.wait_until(lambda: here.current() == 2, what="on version 2")
    assert here.pointer() == centre.pointer()
    assert f"version 2 of {NAME} from {url}: " in follower.output()
    assert follower.stop() == 0  # SIGTERM: stops cleanly


def test_once_exits_non_zero_naming_the_centre_it_cannot_reach(root: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = mlrm("follow", str(root / NAME), "--training-url", url, "--once")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{NAME}: cannot reach the training service at {url}" in result.stderr
    assert (
        "stays on version 1" in result.stderr and f"Fix: check that the training service runs at {url}" in result.stderr
    )


def test_without_a_training_service_it_says_how_to_name_one(root: Path) -> None:
    result = mlrm("follow", str(root / NAME), "--once")
    assert result.returncode == 1
    assert "pass --training-url URL, or set MLRM_TRAINING_SERVICE" in result.stderr
