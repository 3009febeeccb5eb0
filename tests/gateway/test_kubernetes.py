"""`mlrm export kubernetes`: every object valid for a pinned Kubernetes, and true to how the services run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlrm.cli import main, parser
from mlrm.errors import ConfigError
from mlrm.gateway.kubernetes import DRAIN_S, Options, export
from mlrm.gateway.manifest import ML_PROBES, TRAINING_PROBES, load_manifest
from mlrm.rest.app import ROUTES as ML_ROUTES
from mlrm.rest.server import GRACEFUL_TIMEOUT
from tests.toolkit.certificates import make_certificate
from tests.toolkit.files import ROOT, copy_config_set, write_manifest
from training_service.api import ROUTES as TRAINING_ROUTES

# The Kubernetes version the objects are checked against (kubernetes-validate carries its schemas).
KUBERNETES = "1.31.0"
PG_URL = "postgresql://mlrm:s3cret@postgres:5432/mlrm"

CENTRAL = f"""\
name: central
host: 0.0.0.0
credentials: {{tokens: secrets/tokens.yaml}}
services:
  pcb-inspection: {{config_set: configs/pcb-inspection, port: 8001, workers: 3}}
  air-quality: {{config_set: configs/air-quality, port: 0}}
  breast-cancer: {{config_set: configs/breast-cancer, port: 8002, enabled: false}}
training: {{mode: local, port: 8100, store: "{PG_URL}"}}
"""

REMOTE = """\
name: line-7
host: 0.0.0.0
credentials: {tokens: secrets/tokens.yaml, client_token: secrets/line-7.token}
services:
  pcb-inspection: {config_set: configs/pcb-inspection, port: 8001}
training: {mode: remote, url: "https://central.example.com:8100"}
"""


def objects(path: Path, **options: Any) -> list[dict[str, Any]]:
    return export(load_manifest(path), Options(**options)).objects


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The pod's container of that name; by default its service (the first; the only one unless it follows)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if name in (None, c["name"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def demo() -> list[dict[str, Any]]:
    return objects(ROOT / "services" / "demo.yaml")


@pytest.fixture
def central(tmp_path: Path) -> list[dict[str, Any]]:
    return objects(write_manifest(tmp_path, CENTRAL), namespace="plant", storage_class="nfs")


@pytest.fixture
def remote(tmp_path: Path) -> list[dict[str, Any]]:
    return objects(write_manifest(tmp_path, REMOTE))


@pytest.mark.parametrize("which", ["demo", "central", "remote"])
def test_every_object_is_valid_for_the_pinned_kubernetes(which: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(which)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises, naming the field, when not
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(set(names)) == len(names)


def test_the_demo_is_a_deployment_and_a_service_per_ml_service_plus_the_training_service(
    demo: list[dict[str, Any]],
) -> None:
    deployments = of_kind(demo, "Deployment")
    assert list(deployments) == [
        f"demo-{n}" for n in ("training-service", "pcb-inspection", "breast-cancer", "air-quality")
    ]
    assert list(of_kind(demo, "Service")) == list(deployments)
    assert set(of_kind(demo, "ConfigMap")) == {"demo-pcb-inspection", "demo-breast-cancer", "demo-air-quality"}
    claims = of_kind(demo, "PersistentVolumeClaim")
    # Shared with the training service, which writes new versions into them; its SQLite store is its own.
    assert {n: c["spec"]["accessModes"] for n, c in claims.items()} == {
        "demo-pcb-inspection": ["ReadWriteMany"], "demo-breast-cancer": ["ReadWriteMany"],
        "demo-air-quality": ["ReadWriteMany"], "demo-training-store": ["ReadWriteOnce"],
    }  # fmt: skip
    text = (ROOT / "configs" / "pcb-inspection" / "service.yaml").read_text(encoding="utf-8")
    assert of_kind(demo, "ConfigMap")["demo-pcb-inspection"]["data"] == {"service.yaml": text}


def test_container_args_are_what_the_mlrm_command_line_takes(demo: list[dict[str, Any]]) -> None:
    for deployment in of_kind(demo, "Deployment").values():
        c = container(deployment)
        assert c["command"] == ["mlrm"]
        args = parser().parse_args(c["args"])  # exits (SystemExit) on an option mlrm does not have
        assert args.host == "0.0.0.0" and args.tokens == "/etc/mlrm/credentials/tokens.yaml"
        assert args.port == c["ports"][0]["containerPort"]


def test_probes_ask_the_open_health_routes_on_the_served_port(demo: list[dict[str, Any]]) -> None:
    open_routes = {
        "ml-service": {rule for rule, _, _, scope in ML_ROUTES if scope is None},
        "training-service": {rule for rule, _, _, scope in TRAINING_ROUTES if scope is None},
    }
    expected = {"ml-service": ML_PROBES, "training-service": TRAINING_PROBES}
    services = of_kind(demo, "Service")
    for name, deployment in of_kind(demo, "Deployment").items():
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        c = container(deployment)
        port = c["ports"][0]
        probes = {k: c[f"{k}Probe"]["httpGet"] for k in ("startup", "liveness", "readiness")}
        assert probes["liveness"]["path"] == probes["startup"]["path"] == expected[component]["live"]
        assert probes["readiness"]["path"] == expected[component]["ready"]
        for probe in probes.values():
            assert probe["path"] in open_routes[component]  # probes send no token
            assert probe["port"] == port["name"] and probe["scheme"] == "HTTP"
        [service_port] = services[name]["spec"]["ports"]
        assert service_port["targetPort"] == port["name"]
        assert (
            services[name]["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_a_pod_drains_then_gets_longer_than_gunicorn_takes_to_stop(demo: list[dict[str, Any]]) -> None:
    stop_timeout = load_manifest(ROOT / "services" / "demo.yaml").supervision.stop_timeout
    for deployment in of_kind(demo, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert container(deployment)["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(DRAIN_S)]
        assert pod["terminationGracePeriodSeconds"] > DRAIN_S + max(GRACEFUL_TIMEOUT, stop_timeout)


def test_pods_run_as_non_root_on_a_read_only_root_with_resources(demo: list[dict[str, Any]]) -> None:
    for deployment in of_kind(demo, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        for c in pod["containers"] + pod["initContainers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys() and "memory" in c["resources"]["limits"]
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert "/tmp" in mounts


def test_service_yaml_reaches_the_volume_through_an_init_container(demo: list[dict[str, Any]]) -> None:
    pod = of_kind(demo, "Deployment")["demo-pcb-inspection"]["spec"]["template"]["spec"]
    [seed] = pod["initContainers"]
    assert seed["command"] == [
        "python", "-m", "mlrm.gateway.seed", "/etc/mlrm/config-sets/pcb-inspection",
        "/var/lib/mlrm/configs/pcb-inspection", "--learned", "/app/configs/pcb-inspection/learned",
    ]  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["files-pcb-inspection"]["configMap"]["name"] == "demo-pcb-inspection"
    assert volumes["set-pcb-inspection"]["persistentVolumeClaim"]["claimName"] == "demo-pcb-inspection"
    readonly = {m["name"]: m.get("readOnly", False) for m in seed["volumeMounts"]}
    assert readonly == {"files-pcb-inspection": True, "set-pcb-inspection": False}


def test_the_postgresql_url_comes_from_a_secret_and_appears_nowhere(central: list[dict[str, Any]]) -> None:
    assert "s3cret" not in yaml.safe_dump_all(central) and "postgres:5432" not in yaml.safe_dump_all(central)
    training = of_kind(central, "Deployment")["central-training-service"]
    c = container(training)
    assert c["args"][c["args"].index("--store") + 1] == "$(MLRM_STORE)"
    [store] = [e for e in c["env"] if e["name"] == "MLRM_STORE"]
    assert store["valueFrom"] == {"secretKeyRef": {"name": "central-store", "key": "url"}}
    [password] = [e for e in c["env"] if e["name"] == "PGPASSWORD"]  # libpq's: the URL may leave it out
    assert password["valueFrom"] == {"secretKeyRef": {"name": "central-store", "key": "password", "optional": True}}
    # Several instances may share PostgreSQL: a rolling update, and no store volume.
    assert training["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert "central-training-store" not in of_kind(central, "PersistentVolumeClaim")
    assert {d["metadata"]["namespace"] for d in central} == {"plant"}
    assert {c["spec"]["storageClassName"] for c in of_kind(central, "PersistentVolumeClaim").values()} == {"nfs"}


def test_disabled_services_are_left_out_and_port_0_gets_a_fixed_one(central: list[dict[str, Any]]) -> None:
    assert set(of_kind(central, "Deployment")) == {
        "central-training-service", "central-pcb-inspection", "central-air-quality",
    }  # fmt: skip
    air = container(of_kind(central, "Deployment")["central-air-quality"])
    assert air["ports"][0]["containerPort"] == 8000
    pcb = of_kind(central, "Deployment")["central-pcb-inspection"]
    assert container(pcb)["args"][container(pcb)["args"].index("--workers") + 1] == "3"
    assert container(pcb)["resources"]["requests"]["cpu"] == "300m"


def test_a_gateway_following_a_central_training_service(remote: list[dict[str, Any]]) -> None:
    deployments = of_kind(remote, "Deployment")
    assert list(deployments) == ["line-7-pcb-inspection"]
    env = {e["name"]: e.get("value") for e in container(deployments["line-7-pcb-inspection"])["env"]}
    assert env["MLRM_TRAINING_SERVICE"] == "https://central.example.com:8100"
    assert env["MLRM_TOKEN_FILE"] == "/etc/mlrm/credentials/client-token"
    # Only its own pod uses the volume.
    assert of_kind(remote, "PersistentVolumeClaim")["line-7-pcb-inspection"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = deployments["line-7-pcb-inspection"]["spec"]["template"]["spec"]["volumes"]
    [credentials] = [v for v in volumes if v["name"] == "credentials"]
    assert credentials["secret"]["secretName"] == "line-7-credentials"
    assert [i["key"] for i in credentials["secret"]["items"]] == ["tokens.yaml", "client-token"]


def test_tls_serves_https_with_a_tls_secret(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path / "secrets", ("127.0.0.1", "tls-gw-pcb-inspection"))
    text = REMOTE.replace("line-7", "tls-gw") + f"tls: {{certfile: {cert}, keyfile: {key}}}\n"
    docs = objects(write_manifest(tmp_path, text))
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    c = container(of_kind(docs, "Deployment")["tls-gw-pcb-inspection"])
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS" and c["ports"][0]["name"] == "https"
    assert c["args"][-4:] == ["--certfile", "/etc/mlrm/tls/tls.crt", "--keyfile", "/etc/mlrm/tls/tls.key"]


def test_names_kubernetes_refuses_are_errors_naming_the_key(tmp_path: Path) -> None:
    text = "name: Line_7\nservices:\n  pcb_inspection: {config_set: configs/pcb-inspection, port: 8001}\n"
    manifest = load_manifest(write_manifest(tmp_path, text), config_sets=False)
    with pytest.raises(ConfigError) as caught:
        export(manifest, Options())
    message = str(caught.value)
    assert "gw.yaml:3: name: 'Line_7' cannot prefix Kubernetes names" in message
    assert "services.pcb_inspection: 'pcb_inspection' is no Kubernetes name" in message
    assert "lowercase letters, digits and '-'" in message


def test_the_command_writes_the_same_file_every_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.k8s.yaml"
    args = ["export", "kubernetes", "services/demo.yaml", "--output", str(out)]
    assert main(args) == 0
    first = out.read_text()
    assert main(args) == 0
    assert out.read_text() == first
    assert "wrote" in capsys.readouterr().out
    assert first.startswith("# Kubernetes objects for gateway 'demo'")
    assert "#   demo-credentials: client-token, tokens.yaml" in first
    assert len(list(yaml.safe_load_all(first))) == 15


def test_a_manifest_that_does_not_load_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "kubernetes", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_a_changed_service_yaml_rolls_the_pods(tmp_path: Path) -> None:
    folder = copy_config_set("breast-cancer", tmp_path / "sets", learned=False)
    path = write_manifest(tmp_path, f"name: gw\nservices:\n  bc: {{config_set: {folder}, port: 8002}}\n")

    def annotations() -> dict[str, str]:
        [deployment] = of_kind(objects(path), "Deployment").values()
        return deployment["spec"]["template"]["metadata"]["annotations"]  # type: ignore[no-any-return]

    before = annotations()
    (folder / "service.yaml").write_text((folder / "service.yaml").read_text() + "# retuned\n")
    assert annotations() != before


def test_pods_get_mlrm_variables_from_the_manifest_never_from_this_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLRM_TRAINING_SERVICE", "http://127.0.0.1:8100")
    monkeypatch.setenv("MLRM_TOKEN_FILE", "/home/me/token")
    text = 'name: gw\nservices:\n  bc: {config_set: configs/breast-cancer, port: 8002}\ntraining: {mode: "off"}\n'
    [deployment] = of_kind(objects(write_manifest(tmp_path, text)), "Deployment").values()
    assert [e["name"] for e in container(deployment)["env"]] == ["OMP_NUM_THREADS"]


def test_a_remote_gateway_s_pod_follows_the_centre_beside_its_service(tmp_path: Path) -> None:
    text = REMOTE.replace("port: 8001}", "port: 8001, process: models}\n  air: {config_set: configs/air-quality, "
                          "port: 8001, process: models}")  # fmt: skip
    text = text.replace('8100"}', '8100", follow_interval: 2.5}')
    manifest = load_manifest(write_manifest(tmp_path, text))
    result = export(manifest, Options())
    assert result.warnings == []  # it follows: nothing to warn about
    [deployment] = of_kind(result.objects, "Deployment").values()
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["models", "follow"]
    service, follow = container(deployment), container(deployment, "follow")
    args = parser().parse_args(follow["args"])  # exits (SystemExit) on an option mlrm does not have
    assert follow["command"] == ["mlrm"] and args.handler.__name__ == "cmd_follow"
    assert args.config_sets == ["/var/lib/mlrm/configs/pcb-inspection", "/var/lib/mlrm/configs/air-quality"]
    assert args.interval == 2.5 and not args.once and args.training_url is None  # the URL: from the env
    assert {e["name"]: e["value"] for e in follow["env"]} == {
        "MLRM_TRAINING_SERVICE": "https://central.example.com:8100",
        "MLRM_TOKEN_FILE": "/etc/mlrm/credentials/client-token",
    }
    # The sets' volumes, where the service looks for new versions, and the client token: as the service has them.
    assert follow["volumeMounts"] == service["volumeMounts"]
    assert follow["securityContext"] == service["securityContext"]
    assert follow["resources"]["requests"] == {"cpu": "20m", "memory": "64Mi"}
    for doc in result.objects:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_services_of_one_process_are_one_deployment(tmp_path: Path) -> None:
    text = """\
name: gw
mqtt: {broker: "mqtt://mosquitto:1883"}
services:
  pcb: {config_set: configs/pcb-inspection, port: 8011, process: models, mqtt: true}
  cancer: {config_set: configs/breast-cancer, port: 8011, process: models, workers: 2}
  air: {config_set: configs/air-quality, port: 8012}
"""
    docs = objects(write_manifest(tmp_path, text))
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    deployments = of_kind(docs, "Deployment")
    assert list(deployments) == ["gw-models", "gw-air"] and list(of_kind(docs, "Service")) == list(deployments)
    models = container(deployments["gw-models"])
    args = parser().parse_args(models["args"])  # one mlrm serve for both sets, the larger workers
    assert args.config_sets == ["configs/pcb-inspection", "configs/breast-cancer"] and args.workers == 2
    assert args.mqtt_set == ["configs/pcb-inspection"]
    pod = deployments["gw-models"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["seed-pcb-inspection", "seed-breast-cancer"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"gw-pcb-inspection", "gw-breast-cancer"}


def test_a_process_name_kubernetes_refuses_is_an_error_naming_the_key(tmp_path: Path) -> None:
    text = "name: gw\nservices:\n  pcb: {config_set: configs/pcb-inspection, port: 8011, process: My_Models}\n"
    with pytest.raises(ConfigError, match=r"services\.pcb\.process: 'My_Models' names a Deployment"):
        export(load_manifest(write_manifest(tmp_path, text), config_sets=False), Options())
