"""`mlrm status` of a real `mlrm up` whose training is remote shows what its follower last saw: the
version it holds, when it last asked, and the centre reachable, or since when not once it stops."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrm.storage.versions import VersionStore
from tests.toolkit.files import write_manifest
from tests.toolkit.processes import Process, mlrm, mlrm_args
from tests.toolkit.training import NAME, republish
from tests.toolkit.waiting import wait_until


def following(manifest: Path) -> dict[str, Any]:
    """`mlrm status MANIFEST --json`: the follower of the one config set."""
    result = mlrm("status", str(manifest), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    [follower] = json.loads(result.stdout)[str(manifest)]["following"]["followers"]
    return follower  # type: ignore[no-any-return]


def test_status_shows_the_follower_and_a_centre_that_stopped(
    root: Path, tmp_path: Path, training_service: Callable[..., tuple[str, Process]], spawn: Callable[..., Process]
) -> None:
    url, centre_process = training_service(root)
    here_set = shutil.copytree(root / NAME, tmp_path / "gateway" / NAME)
    manifest = write_manifest(
        tmp_path,
        f"name: edge\nservices:\n  bc: {{config_set: {here_set}, port: 0}}\n"
        f"training: {{mode: remote, url: '{url}', follow_interval: 0.2}}\n",
    )
    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=60, what="printing the status table")
    assert republish(VersionStore(root / NAME / "learned")) == 2
    seen = wait_until(lambda: (f := following(manifest))["version"] == 2 and f, 30, "following version 2")
    assert seen["reachable"] is True and seen["unreachable_since"] is None and seen["last_error"] is None, seen
    assert (seen["name"], seen["url"], Path(seen["config_set"])) == (NAME, url, Path(here_set))
    assert f"following {url}: {NAME}: version 2 here, last check " in mlrm("status", str(manifest)).stdout

    centre_process.stop()
    gone = wait_until(lambda: (f := following(manifest))["reachable"] is False and f, 30, "the centre unreachable")
    assert gone["version"] == 2 and f"cannot reach the training service at {url}" in gone["last_error"], gone
    table = mlrm("status", str(manifest)).stdout
    assert f"centre unreachable since {gone['unreachable_since']}; last error: cannot reach" in table, table
