"""Loading a version never runs code from its files, and signed versions:
a planted pickle with a correct digest is refused by a real `mlrm serve`
(its payload never runs); with MLRM_VERIFY_KEY set, only versions signed with
the matching private key load, and the previous good version keeps serving;
`mlrm migrate` converts a version stored as a pickle."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests

from mlrm.algorithms import artifacts
from mlrm.config import load_config_set
from mlrm.core.model import Model
from mlrm.errors import StateError
from mlrm.storage import signatures
from mlrm.storage.versions import PARAMETERS, VersionStore, dump_yaml, sha256, write_atomic
from mlrm.tools.datasets import breast_cancer
from tests.toolkit.files import ROOT, configure, copy_config_set
from tests.toolkit.processes import env, mlrm_args


class Payload:
    """What an attacker plants: unpickling it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def plant(store: VersionStore, files: dict[str, bytes]) -> int:
    """A new current version with these artifacts and correct digests (what anyone with write access can do)."""
    record = store.read(1)
    parameters = {k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")}
    return store.write(parameters, files)


def load_errors(url: str) -> set[str]:
    """load_error as several requests see it (two workers, whichever answers)."""
    return {str(requests.get(f"{url}/v1/config", timeout=5).json()["status"]["load_error"]) for _ in range(6)}


def instance() -> dict[str, Any]:
    return {k: v for k, v in breast_cancer(rows=1)[0].items() if k != "diagnosis"}


def answered_by(url: str) -> set[Any]:
    answers = [requests.post(f"{url}/v1/predict", json={"instances": [instance()]}, timeout=5) for _ in range(6)]
    return {(r.status_code, r.json().get("model", {}).get("version")) for r in answers}


@pytest.mark.slow
def test_a_planted_pickle_with_a_correct_digest_is_refused_and_never_runs(serve: Any, tmp_path: Path) -> None:
    folder = copy_config_set("breast-cancer", tmp_path)
    configure(folder, serving={"reload_interval": 0.1})
    url, server = serve(folder, "--workers", "2")
    store = VersionStore(folder / "learned")
    estimator = Model.from_record(load_config_set(folder), store.read(1)).algorithm.estimator  # type: ignore[attr-defined]
    marker = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    joblib.dump({"estimator": estimator, "n_classes": 2, "extra": Payload(marker)}, buffer)
    pickle = buffer.getvalue()

    # As the old format's file name: refused by name, never opened.
    v2 = plant(store, {"model.joblib": pickle})
    server.wait_until(lambda: all("model.joblib, a pickle" in e for e in load_errors(url)), 20, "refusing v2")
    assert f"mlrm migrate {folder}" in load_errors(url).pop()
    # Under the older format's name: not a skops file, so not loaded either.
    plant(store, {"model.skops": pickle})
    server.wait_until(lambda: all("is not a skops file" in e for e in load_errors(url)), 20, "refusing v3")
    # Under today's names: neither JSON nor numpy's arrays without pickle.
    plant(store, {"model.json": pickle, "model.npz": pickle})
    server.wait_until(lambda: all("is not a file mlrm can read" in e for e in load_errors(url)), 20, "refusing v4")

    assert answered_by(url) == {(200, 1)}
    assert not marker.exists(), "the planted payload ran"
    assert v2 == 2


def keys(folder: Path) -> tuple[Path, Path]:
    done = subprocess.run(mlrm_args("keys", "generate", str(folder)), env=env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"export {signatures.VERIFY_ENV}=" in done.stdout
    return folder / signatures.PRIVATE_FILE, folder / signatures.PUBLIC_FILE


@pytest.mark.slow
def test_with_a_verify_key_only_signed_versions_serve(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = keys(tmp_path / "keys")
    assert private.stat().st_mode & 0o077 == 0
    folder = copy_config_set("breast-cancer", tmp_path)
    configure(folder, serving={"reload_interval": 0.1})
    store = VersionStore(folder / "learned")
    monkeypatch.setenv(signatures.SIGNING_ENV, str(private))
    store.rewrite(1, store.read(1).files)  # sign the shipped version
    monkeypatch.setenv(signatures.VERIFY_ENV, str(public))  # the served process inherits both
    url, server = serve(folder, "--workers", "2")
    server.wait_http(f"{url}/v2/health/ready")
    assert answered_by(url) == {(200, 1)}

    monkeypatch.delenv(signatures.SIGNING_ENV)
    unsigned = plant(store, store.read(1).files)
    wait_for: Callable[[str], None] = lambda text: server.wait_until(  # noqa: E731
        lambda: all(text in e for e in load_errors(url)), 20, f"reporting {text!r}"
    )
    wait_for(f"{store.path_of(unsigned) / signatures.SIGNATURE} is missing")
    assert answered_by(url) == {(200, 1)}

    # Signed, then changed by someone without the key, who fixes up every digest.
    monkeypatch.setenv(signatures.SIGNING_ENV, str(private))
    tampered = plant(store, store.read(1).files)
    file = store.path_of(tampered) / PARAMETERS
    file.write_bytes(file.read_bytes().replace(b"created_at:", b"created_at: '2020-01-01'\nx:", 1))
    write_atomic(store.current_file(), dump_yaml({"version": tampered, "parameters_sha256": sha256(file.read_bytes())}))
    wait_for("does not match this version's parameters.yaml")
    assert answered_by(url) == {(200, 1)}

    good = plant(store, store.read(1).files)
    server.wait_until(lambda: answered_by(url) == {(200, good)}, 20, f"serving signed version {good}")
    assert load_errors(url) == {"None"}


def test_signatures_name_the_key_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = signatures.generate(tmp_path / "a")
    other, _ = signatures.generate(tmp_path / "b")
    store = VersionStore(tmp_path / "learned")
    monkeypatch.setenv(signatures.SIGNING_ENV, str(other))
    store.write({}, {"m": b"x"})
    monkeypatch.setenv(signatures.VERIFY_ENV, str(public))
    with pytest.raises(StateError, match=r"signed with another key") as caught:
        store.read(1)
    assert "not " + signatures.key_id(signatures.verifier_from_env().key) in str(caught.value)  # type: ignore[union-attr]
    with pytest.raises(StateError, match="already exist"):
        signatures.generate(tmp_path / "a")
    monkeypatch.setenv(signatures.VERIFY_ENV, str(private))
    with pytest.raises(StateError, match=f"{signatures.VERIFY_ENV}=.*not an Ed25519 public key"):
        store.read(1)
    monkeypatch.setenv(signatures.VERIFY_ENV, str(tmp_path / "nowhere.key"))
    with pytest.raises(StateError, match="cannot read the key file"):
        store.read(1)


def test_migrate_converts_a_pickled_version_to_the_same_model(tmp_path: Path) -> None:
    folder = copy_config_set("breast-cancer", tmp_path)
    config = load_config_set(folder)
    store = VersionStore(folder / "learned")
    model = Model.from_record(config, store.read(1))
    buffer = io.BytesIO()
    joblib.dump({"estimator": model.algorithm.estimator, "n_classes": 2}, buffer)  # type: ignore[attr-defined]
    estimator = model.algorithm.estimator  # type: ignore[attr-defined]
    skops = plant(store, {"model.skops": artifacts.dumps(config.algorithm, estimator, 2)})
    old = plant(store, {"model.joblib": buffer.getvalue()})
    with pytest.raises(StateError, match=f"mlrm migrate {folder}"):
        Model.from_record(config, store.read_current())  # type: ignore[arg-type]

    done = subprocess.run(mlrm_args("migrate", str(folder)), env=env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"version {old}: model.joblib -> model.json + model.npz" in done.stdout
    assert f"version {skops}: model.skops -> model.json + model.npz" in done.stdout
    for version in (skops, old):
        assert sorted(p.name for p in store.path_of(version).iterdir()) == ["model.json", "model.npz", PARAMETERS]
    migrated = Model.from_record(config, store.read_current())  # type: ignore[arg-type]
    assert migrated.version == old
    rows = [instance() for _ in range(3)]
    assert migrated.predict(rows) == model.predict(rows)
    assert Model.from_record(config, store.read(skops)).predict(rows) == model.predict(rows)


def test_a_service_without_a_verify_key_never_loads_cryptography(tmp_path: Path) -> None:
    """cryptography costs 11 MB per process; only a configured key pays for it."""
    script = (
        "import sys\n"
        "from mlrm.config import load_config_set\n"
        "from mlrm.rest import create_app\n"
        "assert create_app(load_config_set(sys.argv[1])).test_client().get('/v2/health/ready').status_code == 200\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))\n"
    )
    run_env = {k: v for k, v in env().items() if k not in (signatures.VERIFY_ENV, signatures.SIGNING_ENV)}
    folder = copy_config_set("breast-cancer", tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, env=run_env, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
