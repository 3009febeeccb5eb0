"""How each Kubernetes object of a gateway looks (mlrm.gateway.kubernetes decides which there are).

Where a config set lives in a pod: a PersistentVolumeClaim per config set,
mounted at /var/lib/mlrm/configs/<set>, holds a working copy (as
`working_copies: true` does on a gateway). An init container copies the
human-written service.yaml from a ConfigMap into it at every start, and the
image's learned/ once, if the set was built into the image; from then on
learned/ (versions, outboxes) is the volume's state. The ConfigMap is only
ever read, so the YAML a person wrote is never rewritten by a machine.
With `training.mode: remote` a second container of each ML pod, `mlrm follow`,
writes the centre's current versions into those volumes (Builder.follower).

The command lines come from mlrm.gateway.commands, the one place that knows
how services are called: pod_view(manifest) is planned exactly as `mlrm up`
plans a manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlrm import __version__
from mlrm.errors import ConfigError, ConfigProblem
from mlrm.gateway.commands import Launch, child_env, group_launch, training_launch
from mlrm.gateway.manifest import TRAINING, Manifest, Probes, ServiceSpec
from mlrm.rest.server import GRACEFUL_TIMEOUT

DEFAULT_IMAGE = f"mlrm:{__version__}"  # what `docker build -t mlrm:VERSION .` makes (docs/deployment.md)
UID = 10001
WORKDIR = PurePosixPath("/var/lib/mlrm")
CONFIGS = WORKDIR / "configs"
STORE_DIR = WORKDIR / "training"
IMAGE_PROJECT = PurePosixPath("/app")
CONFIG_FILES = PurePosixPath("/etc/mlrm/config-sets")
CREDENTIALS_DIR = PurePosixPath("/etc/mlrm/credentials")
TLS_DIR = PurePosixPath("/etc/mlrm/tls")
TOKENS_KEY, CLIENT_TOKEN_KEY, STORE_KEY, PASSWORD_KEY = "tokens.yaml", "client-token", "url", "password"
# Kubernetes expands $(NAME) in args from the container's env: the URL stays in the Secret.
STORE_ENV = "MLRM_STORE"
DEFAULT_PORTS = {"ml": 8000, "training": 8100}  # for `port: 0`: every pod has its own address
# Seconds the pod stays in the Service's endpoints after it is asked to stop (preStop), so
# no new request reaches a process that has stopped accepting them.
DRAIN_S = 5
# The training service stops its forked scheduler after gunicorn, waiting up to this long
# (training_service.children.stop_child); a job cut short resumes at the next start.
SCHEDULER_STOP_S = 15
MARGIN_S = 5
PROBE_PERIOD_S = 5
# mlrm's own environment variables (MLRM_TRAINING_SERVICE, MLRM_TOKEN_FILE, ...): a pod gets those
# ml_launch sets, never the values of the shell that exports.
OWN_ENV = "MLRM_"


@dataclass(frozen=True)
class Options:
    """What `mlrm export kubernetes` takes beyond the manifest."""

    image: str = DEFAULT_IMAGE
    namespace: str | None = None
    storage_class: str | None = None
    storage_size: str = "1Gi"
    store_size: str = "5Gi"


def pod_view(manifest: Manifest) -> Manifest:
    """The manifest as a pod sees it: bound to every address, config sets and secrets where the pods mount them."""
    secure = not (manifest.insecure and manifest.tokens is None)
    training = manifest.training
    return dataclasses.replace(
        manifest,
        host="0.0.0.0",
        root=Path(WORKDIR),
        services=tuple(dataclasses.replace(s, config_set=Path(CONFIGS / s.config_set.name)) for s in manifest.services),
        training=dataclasses.replace(training, config_root=Path(CONFIGS), store=f"$({STORE_ENV})"),
        tokens=Path(CREDENTIALS_DIR / TOKENS_KEY) if secure else None,
        insecure=not secure,
        client_token=Path(CREDENTIALS_DIR / CLIENT_TOKEN_KEY) if secure and training.mode != "off" else None,
        certfile=Path(TLS_DIR / "tls.crt") if manifest.certfile else None,
        keyfile=Path(TLS_DIR / "tls.key") if manifest.keyfile else None,
    )


class Builder:
    """The objects of one manifest; secrets collects the Secrets (and keys) they read."""

    def __init__(self, manifest: Manifest, options: Options, sets: dict[str, Path]) -> None:
        self.manifest = manifest
        self.pod = pod_view(manifest)
        self.options = options
        self.sets = sets  # config set folders by name (the name of their volume and ConfigMap)
        self.gateway = manifest.name
        self.scheme = "HTTPS" if manifest.certfile else "HTTP"
        self.secrets: dict[str, list[str]] = {}
        self.service_yaml: dict[str, str] = {}  # sha256 by config set

    # -- names and metadata ------------------------------------------------

    def name(self, part: str) -> str:
        return f"{self.gateway}-{part}"

    def labels(self, service: str, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": service,
            "app.kubernetes.io/instance": self.name(service),
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.gateway,
            "app.kubernetes.io/managed-by": "mlrm",
        }

    def meta(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if self.options.namespace:
            meta["namespace"] = self.options.namespace
        meta["labels"] = labels
        return meta

    # -- objects -----------------------------------------------------------

    def config_map(self, folder: str, source: Path) -> dict[str, Any]:
        file = source / "service.yaml"
        text = file.read_text(encoding="utf-8")
        self.service_yaml[folder] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if len(text.encode("utf-8")) > 1_000_000:
            raise ConfigError([ConfigProblem(str(file), "", "over 1 MB, a ConfigMap's limit. Make it smaller.")])
        labels = {"app.kubernetes.io/part-of": self.gateway, "app.kubernetes.io/managed-by": "mlrm"}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": self.meta(self.name(folder), labels),
                "data": {"service.yaml": text}}  # fmt: skip

    def digests(self, folders: list[str]) -> dict[str, str]:
        """One sha256 over the service.yaml files the pods copy at start: a changed one changes the pod
        template, so `kubectl apply` rolls the pods (a changed ConfigMap alone would not)."""
        lines = "".join(f"{folder} {self.service_yaml[folder]}\n" for folder in folders)
        return {"mlrm.dev/service-yaml-sha256": hashlib.sha256(lines.encode("utf-8")).hexdigest()}

    def claim(self, name: str, size: str, shared: bool) -> dict[str, Any]:
        labels = {"app.kubernetes.io/part-of": self.gateway, "app.kubernetes.io/managed-by": "mlrm"}
        spec: dict[str, Any] = {
            # Shared with the training service, which writes new versions into it: pods on
            # several nodes need a ReadWriteMany storage class (NFS, CephFS, EFS, ...).
            "accessModes": ["ReadWriteMany" if shared else "ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        }
        if self.options.storage_class:
            spec["storageClassName"] = self.options.storage_class
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": self.meta(name, labels), "spec": spec}

    def service(self, name: str, labels: dict[str, str], port: int) -> dict[str, Any]:
        port_name = self.scheme.lower()
        spec = {
            "selector": {"app.kubernetes.io/instance": labels["app.kubernetes.io/instance"]},
            "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
        }
        return {"apiVersion": "v1", "kind": "Service", "metadata": self.meta(name, labels), "spec": spec}

    def probe(self, path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": self.scheme.lower(), "scheme": self.scheme},
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        }

    def probes(self, probes: Probes) -> dict[str, Any]:
        start = math.ceil(self.manifest.supervision.start_timeout / PROBE_PERIOD_S)
        return {
            # Live within supervision.start_timeout, as `mlrm up` waits for it.
            "startupProbe": self.probe(probes.live, PROBE_PERIOD_S, max(start, 1)),
            "livenessProbe": self.probe(probes.live, 10, 3),
            # An ML service answers 503 here until a model is loaded: no traffic until then.
            "readinessProbe": self.probe(probes.ready, PROBE_PERIOD_S, 1),
        }

    def seed(self, folder: str, source: Path) -> dict[str, Any]:
        """The init container that puts service.yaml (and the image's learned/, once) into the set's volume."""
        args = ["python", "-m", "mlrm.gateway.seed", str(CONFIG_FILES / folder), str(CONFIGS / folder)]
        if self.manifest.root in source.parents:
            args += ["--learned", str(IMAGE_PROJECT / source.relative_to(self.manifest.root).as_posix() / "learned")]
        return {
            "name": f"seed-{folder}",
            "image": self.options.image,
            "command": args,
            "volumeMounts": [
                {"name": f"files-{folder}", "mountPath": str(CONFIG_FILES / folder), "readOnly": True},
                {"name": f"set-{folder}", "mountPath": str(CONFIGS / folder)},
            ],
            "securityContext": container_security(),
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        }

    def set_volumes(self, folders: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        volumes, mounts = [], []
        for folder in folders:
            volumes.append({"name": f"set-{folder}", "persistentVolumeClaim": {"claimName": self.name(folder)}})
            volumes.append({"name": f"files-{folder}", "configMap": {"name": self.name(folder)}})
            mounts.append({"name": f"set-{folder}", "mountPath": str(CONFIGS / folder)})
        return volumes, mounts

    def common_volumes(self, keys: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """/tmp (the root file system is read-only), the credentials and the TLS pair."""
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
        mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
        if self.pod.tokens is not None:
            secret = self.name("credentials")
            self.secrets[secret] = sorted(set(self.secrets.get(secret, [])) | set(keys))
            items = [{"key": k, "path": k} for k in keys]
            # 0440 with fsGroup: readable by the service's group only, as `mlrm token create` keeps the file.
            volumes.append({"name": "credentials", "secret": {"secretName": secret, "items": items,
                                                              "defaultMode": 0o440}})  # fmt: skip
            mounts.append({"name": "credentials", "mountPath": str(CREDENTIALS_DIR), "readOnly": True})
        if self.pod.certfile is not None:
            self.secrets[self.name("tls")] = ["tls.crt", "tls.key"]
            volumes.append({"name": "tls", "secret": {"secretName": self.name("tls"), "defaultMode": 0o440}})
            mounts.append({"name": "tls", "mountPath": str(TLS_DIR), "readOnly": True})
        return volumes, mounts

    def deployment(
        self,
        part: str,
        labels: dict[str, str],
        launch: Launch,
        env: list[dict[str, Any]],
        volumes: tuple[list[dict[str, Any]], list[dict[str, Any]]],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        container = {
            "name": part,
            "image": self.options.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["mlrm"],
            "args": launch.argv[3:],  # without `python -m mlrm`: the image has the mlrm command
            "workingDir": str(WORKDIR),
            "env": [{"name": "OMP_NUM_THREADS", "value": "1"}, *env],  # as `mlrm up` (docs/gateway.md)
            "ports": [{"name": self.scheme.lower(), "containerPort": launch.port, "protocol": "TCP"}],
            **self.probes(launch.probes),
            # gunicorn stops accepting on SIGTERM: wait until the endpoints no longer list the pod.
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_S)]}}},
            "resources": extra["resources"],
            "securityContext": container_security(),
            "volumeMounts": volumes[1],
        }
        pod: dict[str, Any] = {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "terminationGracePeriodSeconds": extra["grace"],
            "initContainers": extra["init"],
            "containers": [container, *extra.get("sidecars", [])],
            "volumes": volumes[0],
        }
        spec = {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": labels["app.kubernetes.io/instance"]}},
            "strategy": extra["strategy"],
            "template": {"metadata": {"labels": labels, "annotations": self.digests(extra["sets"])}, "spec": pod},
        }
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(self.name(part), labels),
                "spec": spec}  # fmt: skip

    # -- services ----------------------------------------------------------

    def training_url(self) -> str | None:
        training = self.manifest.training
        if training.mode == "local":
            port = training.port or DEFAULT_PORTS["training"]
            return f"{self.scheme.lower()}://{self.name(TRAINING)}:{port}"
        return training.url if training.mode == "remote" else None

    def groups(self) -> list[tuple[str, list[ServiceSpec]]]:
        """The ML processes, as `mlrm up` runs them: a service alone, or the services naming one `process`."""
        found: dict[str, list[ServiceSpec]] = {}
        for spec in self.manifest.enabled():
            found.setdefault(spec.process or spec.name, []).append(spec)
        return list(found.items())

    def ml(self, name: str, specs: list[ServiceSpec]) -> list[dict[str, Any]]:
        folders = [spec.config_set.name for spec in specs]
        pod_specs = [next(p for p in self.pod.services if p.name == spec.name) for spec in specs]
        port = specs[0].port or DEFAULT_PORTS["ml"]  # a process's services give one port
        with _without_own_env():
            launch = group_launch(self.pod, name, pod_specs, port, self.training_url())
            inherited = child_env()
        env = [{"name": k, "value": v} for k, v in launch.env.items() if inherited.get(k) != v]
        keys = [TOKENS_KEY] + ([CLIENT_TOKEN_KEY] if self.pod.client_token else [])
        set_volumes, set_mounts = self.set_volumes(folders)
        common, common_mounts = self.common_volumes(keys)
        workers = max(spec.workers for spec in specs)  # as `mlrm up` runs a process
        memory = 128 + 64 * len(specs) + 64 * workers  # MiB: a master and its workers (docs/gateway.md#memory)
        extra = {
            "resources": {
                "requests": {"cpu": f"{100 * workers}m", "memory": f"{memory}Mi"},
                "limits": {"memory": f"{2 * memory}Mi"},
            },
            # After the drain, gunicorn's graceful stop (or the manifest's stop_timeout, if longer).
            "grace": DRAIN_S + math.ceil(max(GRACEFUL_TIMEOUT, self.manifest.supervision.stop_timeout)) + MARGIN_S,
            "init": [self.seed(folder, spec.config_set) for folder, spec in zip(folders, specs)],
            "sets": folders,
            # One pod at a time: the volume may attach to one node only, and the outboxes are SQLite files.
            "strategy": {"type": "Recreate"},
        }
        if self.manifest.training.mode == "remote":
            extra["sidecars"] = [self.follower(folders, env, set_mounts + common_mounts)]
        labels = self.labels(name, "ml-service")
        deployment = self.deployment(name, labels, launch, env, (set_volumes + common, set_mounts + common_mounts),
                                     extra)  # fmt: skip
        return [deployment, self.service(self.name(name), labels, port)]

    def follower(self, folders: list[str], env: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
        """`mlrm follow` beside the ML service (training.mode: remote), as `mlrm up` follows in its own process:
        it writes the centre's current version into the sets' volumes, the service switches to it live."""
        interval = self.manifest.training.follow_interval
        return {
            "name": "follow",
            "image": self.options.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["mlrm"],
            "args": ["follow", *(str(CONFIGS / folder) for folder in folders), "--interval", f"{interval:g}"],
            "workingDir": str(WORKDIR),
            # The service's own MLRM_ variables: the centre's URL, the client token's file (and MLRM_LOG_FORMAT).
            "env": [e for e in env if e["name"].startswith(OWN_ENV)],
            # A version is checked in memory before it is written (training.follow.MAX_VERSION_BYTES).
            "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": container_security(),
            "volumeMounts": mounts,
        }

    def training(self) -> list[dict[str, Any]]:
        training = self.manifest.training
        port = training.port or DEFAULT_PORTS["training"]
        launch = training_launch(self.pod, port)
        postgres = training.store.split("://", 1)[0] in ("postgres", "postgresql")
        objects: list[dict[str, Any]] = []
        secret = self.name("store")
        if postgres:
            self.secrets[secret] = [STORE_KEY, f"{PASSWORD_KEY} (optional)"]
            store = [
                {"name": STORE_ENV, "valueFrom": {"secretKeyRef": {"name": secret, "key": STORE_KEY}}},
                # libpq reads PGPASSWORD, so the URL may leave the password out (docs/training-service.md).
                {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": PASSWORD_KEY,
                                                                      "optional": True}}},
            ]  # fmt: skip
        else:
            objects.append(self.claim(self.name("training-store"), self.options.store_size, shared=False))
            store = [{"name": STORE_ENV, "value": f"sqlite:///{STORE_DIR}/training.sqlite"}]
        folders = list(self.sets)
        set_volumes, set_mounts = self.set_volumes(folders)
        common, common_mounts = self.common_volumes([TOKENS_KEY])
        if not postgres:
            set_volumes.append({"name": "store", "persistentVolumeClaim": {"claimName": self.name("training-store")}})
            set_mounts.append({"name": "store", "mountPath": str(STORE_DIR)})
        extra = {
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
            "grace": DRAIN_S + GRACEFUL_TIMEOUT + SCHEDULER_STOP_S + MARGIN_S,
            "init": [self.seed(folder, self.sets[folder]) for folder in folders],
            "sets": folders,
            # SQLite is one file on one volume: the old pod goes before the new one opens it. PostgreSQL
            # takes several instances at once (a lock in the store keeps one scheduler active).
            "strategy": {"type": "RollingUpdate"} if postgres else {"type": "Recreate"},
        }
        labels = self.labels(TRAINING, "training-service")
        deployment = self.deployment(TRAINING, labels, launch, store, (set_volumes + common, set_mounts +
                                     common_mounts), extra)  # fmt: skip
        return [*objects, deployment, self.service(self.name(TRAINING), labels, port)]

    def build(self) -> list[dict[str, Any]]:
        shared = self.manifest.training.mode == "local"
        groups = self.groups()
        users: dict[str, int] = {}  # Deployments mounting each config set's volume
        for _, specs in groups:
            for folder in {spec.config_set.name for spec in specs}:
                users[folder] = users.get(folder, 0) + 1
        objects: list[dict[str, Any]] = []
        for folder, source in self.sets.items():
            objects.append(self.config_map(folder, source))
            objects.append(self.claim(self.name(folder), self.options.storage_size, shared or users[folder] > 1))
        if self.manifest.training.mode == "local":
            objects += self.training()
        for name, specs in groups:
            objects += self.ml(name, specs)
        return objects


@contextmanager
def _without_own_env() -> Iterator[None]:
    """os.environ without mlrm's own variables for a moment (the CLI is single-threaded here)."""
    saved = {n: os.environ.pop(n) for n in list(os.environ) if n.startswith(OWN_ENV)}
    try:
        yield
    finally:
        os.environ.update(saved)


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
