"""Credentials with scopes on both services, against real gunicorn: each scope allows exactly
its routes (read from the ROUTES tables, so a new route without a scope fails here), rotation
without a restart, refusal off loopback, and a gate-refused version guarded and audited."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from werkzeug.test import Client

from mlrm import credentials
from mlrm.credentials import SCOPES
from mlrm.gateway.commands import plan
from mlrm.gateway.manifest import load_manifest
from mlrm.rest import app as ml_app
from mlrm.rest import create_app
from mlrm.storage import audit
from mlrm.storage.versions import VersionStore
from tests.toolkit.files import write_manifest
from tests.toolkit.processes import Process, env, free_port, mlrm, mlrm_args
from tests.toolkit.waiting import wait_until
from training_service import api as training_api

Routes = list[tuple[str, list[str], str, str | None]]


def make_tokens(file: Path) -> dict[str, str]:
    """One token per scope, named after it, through `mlrm token create` as an operator makes them."""
    tokens = {}
    for scope in SCOPES:
        done = mlrm("token", "create", scope, "--scopes", scope, "--file", str(file))
        assert done.returncode == 0, done.stderr
        tokens[scope] = done.stdout.strip()
    assert all(t not in file.read_text() for t in tokens.values())  # only hashes are stored
    return tokens


def concrete(rule: str, name: str) -> str:
    rule = rule.replace("<int:version>", "1").replace("<file>", "parameters.yaml")
    return rule.replace("<name>", name).replace("<version>", "1").replace("<int:job_id>", "1")


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def check_table(base: str, routes: Routes, name: str, tokens: dict[str, str]) -> None:
    """Every route against no token, an unknown one, and one token per scope."""
    wrong = []
    for rule, methods, _, scope in routes:
        assert scope is None or scope in SCOPES, f"{rule}: unknown scope {scope!r}"
        for method in methods:
            url = base + concrete(rule, name)
            for holder, token in [("none", None), ("unknown", "mlrm_not-a-token"), *tokens.items()]:
                answer = requests.request(method, url, headers=bearer(token), json={}, timeout=30)
                allowed = scope is None or holder == scope
                expected = (answer.status_code not in (401, 403)) if allowed else (
                    answer.status_code == (403 if holder in SCOPES else 401)
                    and answer.headers["Content-Type"] == "application/problem+json"
                    and f"'{scope}'" in answer.json()["detail"]
                )  # fmt: skip
                if not expected:
                    wrong.append(f"{method} {rule} with {holder}: {answer.status_code} {answer.text[:200]}")
                if answer.status_code == 401:
                    assert answer.headers["WWW-Authenticate"] == credentials.CHALLENGE
    assert not wrong, "\n".join(wrong)


def test_each_scope_allows_exactly_its_routes_on_the_ml_service(
    tmp_path: Path, config_set: Path, serve: Callable[..., tuple[str, Process]]
) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens = make_tokens(tokens_file)
    base, _ = serve(config_set, "--tokens", str(tokens_file))
    check_table(base, ml_app.ROUTES, "pcb-inspection", tokens)
    # Every attempt at an admin action is on record: who, what, from where, how it ended.
    entries = audit.entries(config_set / "learned")
    for path in ("/v1/admin/reload", "/v1/models/pcb-inspection/admin/reload"):
        seen = [(e["who"], e["what"], e["from"], e["status"]) for e in entries if e["what"] == f"POST {path}"]
        assert seen == [
            (who, f"POST {path}", "127.0.0.1", {"admin": 200}.get(who, 401 if who == "unauthenticated" else 403))
            for who in ["unauthenticated", "unauthenticated", *SCOPES]
        ]
    assert len(entries) == 2 * (2 + len(SCOPES))


def test_rotation_needs_no_restart(tmp_path: Path, config_set: Path, serve: Callable[..., tuple[str, Process]]) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    old = make_tokens(tokens_file)["predict"]
    base, _ = serve(config_set, "--tokens", str(tokens_file))
    assert requests.get(f"{base}/v2", headers=bearer(old), timeout=10).status_code == 200
    new = mlrm("token", "create", "predict", "--scopes", "predict", "--file", str(tokens_file)).stdout.strip()
    wait_until(
        lambda: requests.get(f"{base}/v2", headers=bearer(old), timeout=10).status_code == 401, 10, "old refused"
    )
    assert requests.get(f"{base}/v2", headers=bearer(new), timeout=10).status_code == 200
    assert mlrm("token", "revoke", "predict", "--file", str(tokens_file)).returncode == 0
    wait_until(lambda: requests.get(f"{base}/v2", headers=bearer(new), timeout=10).status_code == 401, 10, "revoked")


@pytest.mark.parametrize("token", [None, "mlrm_unknown", "ingest", "predict"])
def test_fast_predict_path_answers_credentials_as_flask(
    tmp_path: Path, config_set: Path, pcb_instance: dict[str, Any], token: str | None
) -> None:
    tokens = {s: credentials.create(tmp_path / "tokens.yaml", s, [s]) for s in SCOPES}
    app = create_app(config_set, tokens=tmp_path / "tokens.yaml")
    route = app.wsgi_app
    assert isinstance(route, ml_app.PredictRoute)
    sent = {"Content-Type": "application/json", **bearer(tokens.get(token or "", token))}
    data = orjson.dumps({"instances": [pcb_instance]})
    fast, flask = (Client(a).post("/v1/predict", data=data, headers=sent) for a in (app, route.app))
    seen = [
        (r.status_code, r.content_type, r.headers.get("WWW-Authenticate"), r.get_json(force=True))
        for r in (fast, flask)
    ]
    assert seen[0] == seen[1]
    assert seen[0][0] == {None: 401, "mlrm_unknown": 401, "ingest": 403, "predict": 200}[token]


def test_off_loopback_without_tokens_refuses_to_start(config_set: Path, root: Path) -> None:
    for args in (["serve", str(config_set)], ["training-service", "--config-root", str(root)]):
        done = mlrm(*args, "--host", "0.0.0.0", "--port", str(free_port()))
        assert done.returncode == 2, done.stderr
        assert "refusing to listen on 0.0.0.0 without credentials" in done.stderr
        assert "mlrm token create" in done.stderr and "--insecure" in done.stderr


def test_insecure_starts_off_loopback_and_warns(config_set: Path, spawn: Callable[..., Process]) -> None:
    port = free_port()
    process = spawn(mlrm_args("serve", str(config_set), "--host", "0.0.0.0", "--port", str(port), "--insecure"))
    process.wait_http(f"http://127.0.0.1:{port}/v1/config")  # open, as asked
    assert "WARNING: --insecure: listening on 0.0.0.0 with no credentials" in process.output()


def refused_version(folder: Path) -> int:
    """Store a copy of version 1 as a version the promotion gate refused (the attacker's version 4)."""
    store = VersionStore(folder / "learned")
    record = store.read(1)
    parameters = {k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")}
    parameters.update(promoted=False, gate={"reason": "candidate 0.41 < current 0.93"})
    return store.write(parameters, record.files, make_current=False)


def test_training_service_scopes_and_a_refused_version_needs_force_and_admin(
    tmp_path: Path, root: Path, training_service: Callable[..., tuple[str, Process]]
) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens = make_tokens(tokens_file)
    folder = root / "breast-cancer"
    base, _ = training_service(root, "--tokens", str(tokens_file))
    check_table(base, training_api.ROUTES, "breast-cancer", tokens)
    version = refused_version(folder)
    url = f"{base}/v1/services/breast-cancer/rollback"
    assert (
        requests.post(url, json={"version": version, "force": True}, headers=bearer(tokens["ingest"])).status_code
        == 403
    )
    plain = requests.post(url, json={"version": version}, headers=bearer(tokens["admin"]), timeout=10)
    assert plain.status_code == 409 and '"force": true' in plain.json()["detail"]
    assert VersionStore(folder / "learned").current() == 1
    forced = requests.post(url, json={"version": version, "force": True}, headers=bearer(tokens["admin"]), timeout=10)
    assert forced.status_code == 200 and forced.json()["forced"] is True
    assert VersionStore(folder / "learned").current() == version
    last = audit.entries(folder / "learned")[-1]
    assert (last["who"], last["what"], last["from"], last["status"]) == (
        "admin",
        "POST /v1/services/breast-cancer/rollback",
        "127.0.0.1",
        200,
    )
    assert last["answer"]["forced"] is True and last["answer"]["version"] == version


def test_cli_rollback_to_a_refused_version_needs_force(config_set: Path) -> None:
    version = refused_version(config_set)
    done = mlrm("rollback", str(config_set), "--to", str(version))
    assert done.returncode == 2 and "--force" in done.stderr
    assert mlrm("rollback", str(config_set), "--to", str(version), "--force").returncode == 0
    assert audit.entries(config_set / "learned")[-1]["forced"] is True


def test_train_remote_sends_the_token(
    tmp_path: Path, root: Path, training_service: Callable[..., tuple[str, Process]], cancer_rows: list[dict[str, Any]]
) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    token = credentials.create(tokens_file, "trainer", ["ingest", "admin"])
    base, _ = training_service(root, "--tokens", str(tokens_file))
    data = tmp_path / "cancer.csv"
    header = list(cancer_rows[0])
    data.write_text("\n".join([",".join(header), *(",".join(str(r[k]) for k in header) for r in cancer_rows)]))
    args = mlrm_args("train", "breast-cancer", "--remote", base, "--data", str(data))
    refused = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=120)
    assert refused.returncode == 1 and "401" in refused.stderr and "MLRM_TOKEN" in refused.stderr
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    done = subprocess.run(
        args, capture_output=True, text=True, env={**env(), "MLRM_TOKEN_FILE": str(token_file)}, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "samples accepted" in done.stdout
    train = [e for e in audit.entries(root / "breast-cancer" / "learned") if e["what"].endswith("/train")]
    assert train and train[-1]["who"] == "trainer"


def test_a_gateway_off_loopback_needs_tokens_and_passes_them_by_file(tmp_path: Path) -> None:
    services = "name: gw\nhost: 0.0.0.0\nservices:\n  bc: {config_set: configs/breast-cancer, port: 0}\n"
    refused = mlrm("up", str(write_manifest(tmp_path, services)), "--check")
    assert refused.returncode == 2 and "credentials.tokens" in refused.stderr and "mlrm token create" in refused.stderr
    credentials.create(tmp_path / "tokens.yaml", "gateway", ["ingest"])
    (tmp_path / "gateway.token").write_text("the token, which the manifest never holds\n")
    text = (
        f"{services}credentials: {{tokens: {tmp_path / 'tokens.yaml'}, client_token: {tmp_path / 'gateway.token'}}}\n"
    )
    steps = plan(load_manifest(write_manifest(tmp_path, text), config_sets=False), check_ports=False)
    for launch in steps.launches:
        assert launch.argv[launch.argv.index("--tokens") + 1] == str(tmp_path / "tokens.yaml")
    ml = next(launch for launch in steps.launches if launch.kind == "ml")
    assert ml.env[credentials.TOKEN_FILE_ENV] == str(tmp_path / "gateway.token")
