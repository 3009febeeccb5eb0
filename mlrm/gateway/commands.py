"""What a gateway runs: the command line, URL and probes of each service.

This is the one place that knows how `mlrm serve` and `mlrm training-service`
are called: their options are named here and nowhere else in the gateway.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mlrm
from mlrm.credentials import TOKEN_FILE_ENV
from mlrm.errors import ConfigError
from mlrm.gateway.manifest import TRAINING, Manifest, Probes, ServiceSpec, reachable_host
from mlrm.gateway.manifest_schema import DASHBOARD, DASHBOARD_PROBES
from mlrm.training.remote import CA_FILE_ENV, TRAINING_SERVICE_ENV

# `mlrm training-service --config-root DIR --port N --host H --store URL`.
TRAINING_COMMAND = "training-service"
# `mlrm serve --mqtt-broker URL` also takes predictions over MQTT.
MQTT_OPTION = "--mqtt-broker"
# `mlrm serve A B --mqtt-broker URL --mqtt-set A`: of several sets, only A takes MQTT from URL.
MQTT_SET_OPTION = "--mqtt-set"

# Why a service is left out (the short reason shows in the status table).
SKIPPED_BECAUSE = {"disabled": "enabled: false in the manifest"}


@dataclass(frozen=True)
class Launch:
    """One process the gateway starts and watches."""

    name: str
    kind: str  # "ml", "training" or "dashboard"
    argv: list[str]
    url: str
    probes: Probes
    cwd: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    config_set: Path | None = None
    # A process of several services (the manifest's `process`): (service name, config set) of each.
    models: tuple[tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything `mlrm up` starts, in order, and what it leaves out and why."""

    launches: list[Launch]
    skipped: dict[str, str]
    training_url: str | None
    # How the gateway asks its services (a reload may change them): the certificate its probes
    # trust, and the file of the token `mlrm status` sends.
    ca_file: Path | None = None
    client_token: Path | None = None


def free_port(host: str) -> int:
    """A TCP port nothing listens on right now (for port: 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether another program already holds host:port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def url_of(host: str, port: int, scheme: str = "http") -> str:
    """Where to reach a service bound to host:port from this machine."""
    reachable = reachable_host(host)
    return f"{scheme}://[{reachable}]:{port}" if ":" in reachable else f"{scheme}://{reachable}:{port}"


def child_env() -> dict[str, str]:
    """The environment of every service: this mlrm importable, output unbuffered."""
    env = dict(os.environ)
    package_parent = str(Path(mlrm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each `mlrm serve` makes its own
    # One OpenMP thread per process unless told otherwise: several services and
    # workers share a few cores, and oversubscribed OpenMP (histogram gradient
    # boosting) was measured 40-100x slower on a busy 2-core machine.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def guarded(argv: list[str]) -> list[str]:
    """argv run through the launcher, which makes the process stop when this
    process (the supervisor: call it there, at start time) dies."""
    return [sys.executable, "-m", "mlrm.gateway.launcher", str(os.getpid()), "--", *argv]


def _from_root(manifest: Manifest, path: Path | None) -> str:
    """A path as services see it: they run in root, so relative to it when under it."""
    assert path is not None
    return str(path.relative_to(manifest.root)) if manifest.root in path.parents else str(path)


def _mlrm(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlrm", *args]


def _credentials(manifest: Manifest) -> list[str]:
    """The options that give a service the manifest's tokens file (or say --insecure, as the manifest does)."""
    if manifest.tokens:
        return ["--tokens", str(manifest.tokens)]
    return ["--insecure"] if manifest.insecure else []


def _tls(manifest: Manifest) -> list[str]:
    """The options that make a service serve HTTPS with the manifest's certificate."""
    if manifest.certfile is None or manifest.keyfile is None:
        return []
    return ["--certfile", _from_root(manifest, manifest.certfile), "--keyfile", _from_root(manifest, manifest.keyfile)]


def ml_launch(manifest: Manifest, spec: ServiceSpec, port: int, training_url: str | None = None) -> Launch:
    """How one ML service is started; feedback goes to the gateway's training service."""
    return group_launch(manifest, spec.name, [spec], port, training_url)


def group_launch(
    manifest: Manifest, name: str, specs: list[ServiceSpec], port: int, training_url: str | None = None
) -> Launch:
    """How one `mlrm serve` is started for one service, or for the services of one `process` (each set at
    /v1/models/NAME/; the largest workers of them; MQTT from the manifest's broker for those with mqtt: true)."""
    sets = [_from_root(manifest, spec.config_set) for spec in specs]
    workers = max(spec.workers for spec in specs)
    argv = ["serve", *sets, "--host", manifest.host, "--port", str(port), "--workers", str(workers)]
    if any(spec.mqtt for spec in specs):
        argv += [MQTT_OPTION, str(manifest.mqtt_broker)]
        if not all(spec.mqtt for spec in specs):
            argv += [x for spec, path in zip(specs, sets) if spec.mqtt for x in (MQTT_SET_OPTION, path)]
    argv += _credentials(manifest) + _tls(manifest)
    env = child_env()
    if training_url:
        env[TRAINING_SERVICE_ENV] = training_url
    if manifest.certfile and manifest.training.mode == "local":
        # The local training service serves the manifest's certificate; a remote one is trusted
        # as the environment of `mlrm up` says (system CAs, or MLRM_CA_FILE set there).
        env[CA_FILE_ENV] = str(manifest.certfile)
    if manifest.client_token:
        env[TOKEN_FILE_ENV] = str(manifest.client_token)  # the file's name, never the token
    grouped = specs[0].process is not None
    return Launch(
        name=name,
        kind="ml",
        argv=_mlrm(*argv),
        url=url_of(manifest.host, port, manifest.scheme),
        probes=specs[0].probes,
        cwd=manifest.root,
        port=port,
        env=env,
        config_set=None if grouped else specs[0].config_set,
        models=tuple((spec.name, spec.config_set) for spec in specs) if grouped else (),
    )


def training_launch(manifest: Manifest, port: int) -> Launch:
    """How the local training service is started."""
    training = manifest.training
    argv = [TRAINING_COMMAND, "--config-root", _from_root(manifest, training.config_root), "--port", str(port)]
    argv += ["--workers", str(training.workers)]
    argv += ["--host", manifest.host, "--store", training.store, *_credentials(manifest), *_tls(manifest)]
    return Launch(
        name=TRAINING,
        kind="training",
        argv=_mlrm(*argv),
        url=url_of(manifest.host, port, manifest.scheme),
        probes=training.probes,
        cwd=manifest.root,
        port=port,
        env=child_env(),
    )


def dashboard_launch(manifest: Manifest, port: int) -> Launch:
    """How the dashboard is started: `python -m mlrm.dashboard`, reading this gateway's state file."""
    board = manifest.dashboard
    assert board is not None
    argv = [sys.executable, "-m", "mlrm.dashboard", "--state", str(manifest.state_file)]
    argv += ["--host", board.host, "--port", str(port), "--interval", f"{board.interval:g}"]
    argv += ["--minutes", f"{board.minutes:g}", *_credentials(manifest), *_tls(manifest)]
    if board.token_file:
        argv += ["--token-file", str(board.token_file)]  # the file's name, never the token
    return Launch(
        name=DASHBOARD,
        kind="dashboard",
        argv=argv,
        url=url_of(board.host, port, manifest.scheme),
        probes=Probes(**DASHBOARD_PROBES),
        cwd=manifest.root,
        port=port,
        env=child_env(),
    )


def plan(manifest: Manifest, *, check_ports: bool = True) -> Plan:
    """The launches of a manifest: training service first, then the ML
    services. ConfigError when something cannot start (port taken, MQTT
    asked of an install without it)."""
    problems = []
    skipped: dict[str, str] = {}
    launches: list[Launch] = []
    training = manifest.training
    host = manifest.host

    def port_for(value: int, at: tuple[str, ...], host: str = host) -> int:
        if value == 0:
            return free_port(host)
        if check_ports and port_in_use(host, value):
            problems.append(
                manifest.problem(
                    at,
                    f"port {value} on {host} is in use by another program. Stop it, or pick another port (0: any free one).",
                )
            )
        return value

    training_url: str | None = None
    if training.mode == "local":
        launch = training_launch(manifest, port_for(training.port, ("training", "port")))
        launches.append(launch)
        training_url = launch.url
    elif training.mode == "remote":
        training_url = training.url
    started: set[str] = set()  # the manifest's `process` values planned already
    for spec in manifest.services:
        if not spec.enabled:
            skipped[spec.name] = "disabled"
            continue
        port = port_for(spec.port, ("services", spec.name, "port")) if spec.process not in started else 0
        if spec.process is None:
            launches.append(ml_launch(manifest, spec, port, training_url))
        elif spec.process not in started:  # its first enabled service: one launch for all of them
            started.add(spec.process)
            specs = [s for s in manifest.services if s.enabled and s.process == spec.process]
            launches.append(group_launch(manifest, spec.process, specs, port, training_url))
    if manifest.dashboard is not None:
        board = manifest.dashboard
        launches.append(dashboard_launch(manifest, port_for(board.port, ("dashboard", "port"), board.host)))
    if problems:
        raise ConfigError(problems)
    return Plan(launches, skipped, training_url, manifest.certfile, manifest.client_token)
