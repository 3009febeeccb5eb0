"""Gateway manifests: the shipped ones load; broken ones name file, line, key and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlrm.errors import ConfigError
from mlrm.gateway.commands import TRAINING_COMMAND, plan
from mlrm.gateway.manifest import build_schema, load_manifest
from mlrm.tools.scaffold import schema_line
from tests.toolkit.files import ROOT, write_manifest

SERVICES = ROOT / "services"


@pytest.mark.parametrize("path", sorted(SERVICES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_manifest_loads_and_points_editors_at_the_schema(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.enabled()
    assert path.read_text().splitlines()[0] == schema_line("gateway")
    schema = path.parent / "../.mlrm/gateway.schema.json"  # beside services/, so a copied manifest keeps it
    assert schema.read_bytes() == (ROOT / "mlrm" / "schema" / "gateway.schema.json").read_bytes(), (
        "refresh it: mlrm schema --gateway --write ."
    )


def test_demo_runs_three_services_and_the_training_service_on_embedded_defaults() -> None:
    manifest = load_manifest(SERVICES / "demo.yaml")
    assert [s.name for s in manifest.enabled()] == ["pcb-inspection", "breast-cancer", "air-quality"]
    assert not any(s.mqtt for s in manifest.services) and manifest.mqtt_broker is None
    assert manifest.root == ROOT and manifest.data_dir == ROOT / "var" / "demo"
    assert manifest.training.mode == "local" and manifest.training.config_root == ROOT / "configs"
    assert manifest.training.store == "sqlite:///var/demo/training.sqlite"
    steps = plan(manifest, check_ports=False)
    names = [launch.name for launch in steps.launches]
    assert names[0] == "training-service" and steps.launches[0].argv[3] == TRAINING_COMMAND
    assert names[-4:] == ["pcb-inspection", "breast-cancer", "air-quality", "dashboard"]
    serve = steps.launches[-4].argv
    assert serve[3:] == [
        "serve", "configs/pcb-inspection", "--host", "127.0.0.1", "--port", "8001", "--workers", "2",
    ]  # fmt: skip


BROKEN = {
    "misspelt-key": (
        """
        name: gw
        servces: {}
        """,
        ["gw.yaml:5: servces: unknown key 'servces'. Did you mean 'services'?"],
    ),
    "missing-services": ("name: gw\n", ["missing required key 'services'. Add it: see `mlrm schema --gateway`"]),
    "port-as-string": (
        """
        name: gw
        services:
          a: {config_set: configs/breast-cancer, port: "80x"}
        """,
        ["gw.yaml:6: services.a.port: expected integer, got string '80x'."],
    ),
    "duplicate-port": (
        """
        name: gw
        services:
          a: {config_set: configs/breast-cancer, port: 8101}
          b: {config_set: configs/pcb-inspection, port: 8101}
        """,
        ["gw.yaml:7: services.b.port: port 8101 is already taken by services.a.port."],
    ),
    "missing-config-set": (
        """
        name: gw
        services:
          a: {config_set: configs/nope, port: 8101}
        """,
        ["services.a.config_set: the config set", "configs/nope/service.yaml: no service.yaml here."],
    ),
    "remote-without-url": (
        """
        name: gw
        services:
          a: {config_set: configs/breast-cancer, port: 0}
        training: {mode: remote}
        """,
        ["training: mode: remote needs 'url'"],
    ),
    "misspelt-mode": (
        """
        name: gw
        services:
          a: {config_set: configs/breast-cancer, port: 0}
        training: {mode: locl}
        """,
        ["training.mode: 'locl' is not allowed. Did you mean 'local'?"],
    ),
    "mqtt-without-broker": (
        """
        name: gw
        services:
          a: {config_set: configs/breast-cancer, port: 0, mqtt: true}
        """,
        ["services.a.mqtt: mqtt: true needs a broker"],
    ),
    "reserved-name": (
        """
        name: gw
        services:
          training-service: {config_set: configs/breast-cancer, port: 0}
        """,
        ["services.training-service: 'training-service' is the training service's own row"],
    ),
    "log-format": (
        """
        name: gw
        log_format: yaml
        services:
          a: {config_set: configs/breast-cancer, port: 0}
        """,
        ["gw.yaml:5: log_format: 'yaml' is not allowed. Expected one of: text, json"],
    ),
    "config-set-outside-config-root": (
        f"""
        name: gw
        services:
          a: {{config_set: configs/breast-cancer, port: 0}}
        training: {{mode: local, config_root: {ROOT / "docs"}}}
        """,
        ["services.a.config_set:", "is not under training.config_root"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_names_file_line_key_and_fix(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    with pytest.raises(ConfigError) as caught:
        load_manifest(write_manifest(tmp_path, text))
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        manifest = load_manifest(
            write_manifest(tmp_path, f"name: gw\nservices:\n  a: {{config_set: configs/breast-cancer, port: {port}}}\n")
        )
        with pytest.raises(
            ConfigError, match=f"services.a.port: port {port} on 127.0.0.1 is in use by another program"
        ):
            plan(manifest)


def test_port_zero_picks_free_ports_and_disabled_services_are_skipped(tmp_path: Path) -> None:
    manifest = load_manifest(
        write_manifest(
            tmp_path,
            """
            name: gw
            services:
              a: {config_set: configs/breast-cancer, port: 0}
              b: {config_set: configs/pcb-inspection, port: 0, enabled: false}
            """,
        )
    )
    steps = plan(manifest)
    assert [launch.name for launch in steps.launches] == ["a"] and steps.skipped == {"b": "disabled"}
    assert steps.launches[0].port > 0 and steps.launches[0].url.endswith(f":{steps.launches[0].port}")


def test_shipped_gateway_schema_file_is_current() -> None:
    shipped = json.loads((ROOT / "mlrm" / "schema" / "gateway.schema.json").read_text())
    assert shipped == build_schema(), "regenerate: python -m mlrm schema --gateway -o mlrm/schema/gateway.schema.json"


def test_manifest_reference_is_generated_from_the_schema() -> None:
    from mlrm.config.reference import markdown
    from mlrm.gateway.manifest import REFERENCE_HEADER

    assert (ROOT / "docs" / "manifest-reference.md").read_text() == markdown(build_schema(), REFERENCE_HEADER), (
        "regenerate: python -m mlrm schema --gateway --markdown -o docs/manifest-reference.md"
    )


def test_the_training_services_api_workers_come_from_the_manifest(tmp_path: Path) -> None:
    """A small gateway runs the training service's API in one worker (each costs about 10 MB)."""
    for section, workers in (("{mode: local, port: 0, workers: 1}", "1"), ("{mode: local, port: 0}", "2")):
        services = "services: {a: {config_set: configs/breast-cancer, port: 0}}"
        manifest = load_manifest(write_manifest(tmp_path, f"name: gw\n{services}\ntraining: {section}\n"))
        launch = plan(manifest).launches[0]
        assert launch.kind == "training" and launch.argv[launch.argv.index("--workers") + 1] == workers


def test_a_manifest_may_ask_for_json_logs_and_says_text_otherwise(tmp_path: Path) -> None:
    service = "services:\n  a: {config_set: configs/breast-cancer, port: 0}\n"
    assert load_manifest(write_manifest(tmp_path, f"name: gw\nlog_format: json\n{service}")).log_format == "json"
    assert load_manifest(write_manifest(tmp_path, f"name: gw\n{service}")).log_format == "text"


def test_the_small_board_manifest_runs_the_demo_sets_in_one_process_and_one_training_worker() -> None:
    manifest = load_manifest(SERVICES / "small.yaml")
    demo = load_manifest(SERVICES / "demo.yaml")
    assert [s.config_set for s in manifest.enabled()] == [s.config_set for s in demo.enabled()]
    steps = plan(manifest, check_ports=False)
    serves = [launch.argv for launch in steps.launches if "serve" in launch.argv]
    assert len(serves) == 1  # one mlrm serve for the three sets
    assert all(f"configs/{name}" in serves[0] for name in ("pcb-inspection", "breast-cancer", "air-quality"))
    training = steps.launches[0].argv
    assert training[3] == TRAINING_COMMAND and "--workers" in training
    assert training[training.index("--workers") + 1] == "1"
