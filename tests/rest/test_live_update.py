"""Live update in a real `mlrm serve` (2 gunicorn workers): a separate writer
process changes the current version 20 times while a client predicts
without pause; then a version that fails its digest check is reported and
the old one keeps serving; so does a parameters.yaml that no longer matches
the digest current.yaml pinned. Each runs with the set alone in its process and grouped with another."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.config import load_config_set
from mlrm.storage.versions import PARAMETERS, VersionStore, dump_yaml, sha256, write_atomic
from mlrm.tools.datasets import breast_cancer
from tests.toolkit.files import ROOT, configure, copy_config_set
from tests.toolkit.layouts import Layout
from tests.toolkit.processes import Process, env, mlrm_args

WRITER = """
import sys, time
from mlrm.config import load_config_set
from mlrm.core.model import Model
from mlrm.training.trainer import save
from mlrm.storage.versions import VersionStore

config = load_config_set(sys.argv[1])
store = VersionStore(config.learned_dir)
model = Model.from_record(config, store.read(store.current()))
for i in range(20):
    print(save(config, model, {"f1_macro": 0.9}, data={"rows": 0}, timings={}), flush=True)
    time.sleep(0.15)
"""


def predict_until(v1: str, instance: dict[str, Any], done: Callable[[list[Any]], bool], limit: float = 60) -> list[Any]:
    """Predict one instance after the other until done(answers so far); every answer's (status, version)."""
    answers: list[Any] = []
    deadline = time.monotonic() + limit
    with requests.Session() as session:
        while not done(answers) and time.monotonic() < deadline:
            r = session.post(f"{v1}/predict", json={"instances": [instance]}, timeout=10)
            answers.append((r.status_code, r.json().get("model", {}).get("version")))
    return answers


@pytest.mark.slow
def test_zero_failed_requests_across_20_version_changes_and_a_broken_one(
    serve: Any, spawn: Callable[..., Process], tmp_path: Path, layout: Layout
) -> None:
    folder = copy_config_set("breast-cancer", tmp_path)
    configure(folder, serving={"reload_interval": 0.1})
    server, _ = serve(layout.sets(folder, tmp_path), "--workers", "2")
    url = layout.v1(server, "breast-cancer")
    instance = {k: v for k, v in breast_cancer(rows=1)[0].items() if k != "diagnosis"}

    writer = spawn([sys.executable, "-c", WRITER, str(folder)], name="writer")
    answers = predict_until(url, instance, lambda _: not writer.alive())
    answers += predict_until(url, instance, lambda more: bool(more) and more[-1][1] == 21, limit=10)
    assert writer.proc.returncode == 0, writer.output()
    assert {status for status, _ in answers} == {200}, "a request failed during a version change"
    versions = [v for _, v in answers]
    assert versions[0] == 1 and versions[-1] == 21
    assert len(set(versions)) >= 10  # the client really saw the changes happen
    assert len(answers) > 50

    # A version whose artifact no longer matches its digest: reported, never served.
    store = VersionStore(load_config_set(folder).learned_dir)
    record = store.read(21)
    broken = store.write({k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")},
                         record.files, make_current=False)  # fmt: skip
    (store.path_of(broken) / "model.npz").write_bytes(b"tampered")
    digest = sha256((store.path_of(broken) / PARAMETERS).read_bytes())
    write_atomic(store.current_file(), dump_yaml({"version": broken, "parameters_sha256": digest}))
    started = time.monotonic()
    answers = predict_until(url, instance, lambda _: time.monotonic() - started > 1.0)
    assert answers and set(answers) == {(200, 21)}
    for _ in range(6):  # both workers, whichever answers
        body = requests.get(f"{url}/config", timeout=5).json()
        status = body.get("status")
        assert isinstance(status, dict), body
        assert status["version"] == 21 and "sha256 does not match" in status["load_error"]
    reload = requests.post(f"{url}/admin/reload", timeout=5)
    assert reload.status_code == 500 and "sha256" in reload.json()["error"]

    store.set_current(20)  # `mlrm rollback --to 20`: the fix goes live, the error clears
    answers = predict_until(url, instance, lambda more: bool(more) and more[-1][1] == 20, limit=10)
    assert {status for status, _ in answers} == {200} and answers[-1][1] == 20


def test_a_corrupt_parameters_file_made_current_is_refused_and_the_old_version_keeps_serving(
    serve: Any, tmp_path: Path, layout: Layout
) -> None:
    folder = copy_config_set("breast-cancer", tmp_path)
    configure(folder, serving={"reload_interval": 0.1})
    base, server = serve(layout.sets(folder, tmp_path), "--workers", "2")
    url = layout.v1(base, "breast-cancer")
    instance = {k: v for k, v in breast_cancer(rows=1)[0].items() if k != "diagnosis"}

    # Version 2 goes live, and a bad disk flips one bit of its learned scaling
    # (still valid YAML; its artifacts still match): only current.yaml's digest notices.
    store = VersionStore(folder / "learned")
    record = store.read(1)
    v2 = store.write({k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")},
                     record.files, make_current=False)  # fmt: skip
    file = store.path_of(v2) / PARAMETERS
    good = file.read_bytes()
    assert b"scale:\n  - 3." in good
    file.write_bytes(good.replace(b"scale:\n  - 3.", b"scale:\n  - 7.", 1))
    write_atomic(store.current_file(), dump_yaml({"version": v2, "parameters_sha256": sha256(good)}))

    def errors() -> set[str]:
        return {str(requests.get(f"{url}/config", timeout=5).json()["status"]["load_error"]) for _ in range(6)}

    server.wait_until(lambda: all("parameters.yaml: sha256 is" in e for e in errors()), 20, "refusing version 2")
    (error,) = errors()  # both workers report the same
    assert f"{file}: sha256 is {sha256(file.read_bytes())}" in error and sha256(good) in error
    assert f"mlrm rollback {folder} --to N (versions here: 1, 2)" in error
    answers = predict_until(url, instance, lambda more: len(more) >= 20)
    assert set(answers) == {(200, 1)}

    # The fix the error names: roll back, and the error clears.
    done = subprocess.run(mlrm_args("rollback", str(folder), "--to", "1"), env=env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    server.wait_until(lambda: errors() == {"None"}, 20, "clearing the error after the rollback")
