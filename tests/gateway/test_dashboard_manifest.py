"""The manifest's dashboard section: off by default, wired into the plan, and refused where it
would be open to a network or blind to guarded services."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrm.errors import ConfigError
from mlrm.gateway.commands import plan
from mlrm.gateway.manifest import load_manifest
from tests.toolkit.files import write_manifest

SERVICE = "services:\n  a: {config_set: configs/breast-cancer, port: 8001}\n"


def test_without_a_section_there_is_no_dashboard(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, "name: gw\n" + SERVICE))
    assert manifest.dashboard is None
    assert [launch.kind for launch in plan(manifest, check_ports=False).launches] == ["ml"]


def test_the_section_starts_the_dashboard_last_with_its_settings(tmp_path: Path) -> None:
    text = "name: gw\n" + SERVICE + "dashboard: {port: 8765, interval: 5, token_file: secrets/board.token}\n"
    text += "credentials: {tokens: secrets/tokens.yaml}\n"
    manifest = load_manifest(write_manifest(tmp_path, text))
    assert manifest.dashboard is not None and manifest.dashboard.host == "127.0.0.1"
    launch = plan(manifest, check_ports=False).launches[-1]
    assert launch.kind == "dashboard" and launch.url == "http://127.0.0.1:8765" and launch.probes.live == "/healthz"
    argv = " ".join(launch.argv)
    assert f"-m mlrm.dashboard --state {manifest.state_file} --host 127.0.0.1 --port 8765 --interval 5" in argv
    assert "--tokens" in argv and argv.endswith(f"--token-file {manifest.root / 'secrets' / 'board.token'}")


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("dashboard: {port: 8001}", "services.a.port: port 8001 is already taken by dashboard.port"),
        ("dashboard: {port: 8765, host: 0.0.0.0}", "dashboard.host: the dashboard would listen on 0.0.0.0"),
        (
            "dashboard: {port: 8765}\ncredentials: {tokens: t.yaml}",
            "needs a token to read the services: make one (mlrm token create dashboard --scopes predict,metrics,admin",
        ),
        ("dashboard: {host: 127.0.0.1}", "dashboard: missing required key 'port'"),
        ("dashboard: {port: 8765, interval: 0.1}", "dashboard.interval"),
    ],
)
def test_a_dashboard_that_would_be_open_or_blind_is_refused(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_manifest(write_manifest(tmp_path, "name: gw\n" + SERVICE + extra + "\n"))
    assert problem in str(caught.value), str(caught.value)
