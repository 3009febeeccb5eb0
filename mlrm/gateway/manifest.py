"""Gateway manifests (`services/<gateway>.yaml`): which services one gateway runs.

A manifest names the config sets served as ML services (port, workers, MQTT
on or off), whether this gateway runs the training service or sends training
data to one elsewhere, and where data and logs go. It is checked like a
config set: JSON Schema first, then meaning, every problem with file, line,
key path and the fix. Relative paths start at `root` (default: the folder
above the manifest's own, i.e. the project folder that holds `services/`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrm.config.yamldoc import KeyPath, Report, check_schema, describe, fill_defaults, read_yaml
from mlrm.credentials import CREATE_HINT, is_loopback
from mlrm.errors import ConfigError, ConfigProblem
from mlrm.gateway.manifest_schema import (
    DASHBOARD,
    ML_PROBES,
    REFERENCE_HEADER,
    SCHEMA_ID,
    SERVICE,
    TRAINING,
    TRAINING_PROBES,
    build_schema,
)
from mlrm.gateway.tls import check_feedback_host, check_section

# The schema moved to manifest_schema; these names stay importable from here.
__all__ = [
    "ML_PROBES",
    "REFERENCE_HEADER",
    "SCHEMA_ID",
    "TRAINING",
    "TRAINING_PROBES",
    "Manifest",
    "Probes",
    "DashboardSpec",
    "ServiceSpec",
    "Supervision",
    "TrainingSpec",
    "build_schema",
    "load_manifest",
]


@dataclass(frozen=True)
class Probes:
    live: str
    ready: str


@dataclass(frozen=True)
class ServiceSpec:
    """One ML service of the gateway."""

    name: str
    config_set: Path
    port: int
    workers: int
    mqtt: bool
    enabled: bool
    probes: Probes
    process: str | None = None  # services naming the same process run in one `mlrm serve`


@dataclass(frozen=True)
class TrainingSpec:
    """The training service: run here (local), elsewhere (remote), or none (off)."""

    mode: str
    port: int
    store: str
    config_root: Path | None
    url: str | None
    probes: Probes
    follow_interval: float = 5.0
    workers: int = 2


@dataclass(frozen=True)
class DashboardSpec:
    """The dashboard in the browser (mlrm.dashboard), when the manifest has a dashboard section."""

    host: str
    port: int
    interval: float
    minutes: float
    token_file: Path | None


@dataclass(frozen=True)
class Supervision:
    start_timeout: float
    stop_timeout: float
    backoff_initial: float
    backoff_max: float
    stable_after: float


@dataclass(frozen=True)
class Manifest:
    """A validated gateway manifest with every path resolved."""

    path: Path
    name: str
    description: str
    host: str
    root: Path
    data_dir: Path
    log_dir: Path
    log_max_bytes: int
    log_keep: int
    working_copies: bool
    services: tuple[ServiceSpec, ...]
    training: TrainingSpec
    mqtt_broker: str | None
    supervision: Supervision
    raw: dict[str, Any]
    lines: dict[KeyPath, int]
    tokens: Path | None = None
    log_format: str = "text"
    client_token: Path | None = None
    insecure: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    dashboard: DashboardSpec | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        """A problem at a key of this manifest, with its line (for checks made after loading)."""
        report = Report(self.path, self.lines)
        report(path, message)
        return report.problems[0]

    @property
    def state_file(self) -> Path:
        """Where a running `mlrm up` keeps pids, ports and restart counts."""
        return self.data_dir / "gateway.json"

    def enabled(self) -> list[ServiceSpec]:
        return [s for s in self.services if s.enabled]

    def check_folders(self) -> None:
        """ConfigError naming every enabled service whose config set folder has no service.yaml.

        The cheap check `mlrm up` makes itself: a set that is there but does not load is the
        service's own problem (it fails alone), a folder that is not there is the manifest's."""
        report = Report(self.path, self.lines)
        for spec in self.enabled():
            file = spec.config_set / "service.yaml"
            if not file.is_file():
                report(
                    ("services", spec.name, "config_set"),
                    f"the config set {spec.config_set} does not load; its problems follow.",
                )
                report.problems.append(
                    ConfigProblem(
                        str(file),
                        "",
                        "no service.yaml here. Pass the config set's folder, e.g. configs/pcb-inspection, or create one with `mlrm init NAME`.",
                    )
                )
        if report.problems:
            raise ConfigError(report.problems)


def _check(raw: dict[str, Any], root: Path, report: Report, config_sets: bool) -> None:
    ports: dict[int, tuple[str, ...]] = {}
    training = raw["training"]
    if training["mode"] == "local" and training["port"]:
        ports[training["port"]] = ("training", "port")
    if training["mode"] == "remote" and "url" not in training:
        report(("training",), "mode: remote needs 'url': the training service's base URL, e.g. http://10.0.0.5:8100.")
    if training["mode"] != "remote" and "url" in training:
        report(("training", "url"), f"'url' is only used with mode: remote (mode is {training['mode']}). Remove it.")
    credentials = raw.get("credentials") or {}
    if not is_loopback(raw["host"]) and not credentials.get("tokens") and not credentials.get("insecure"):
        report(
            ("host",),
            f"host {raw['host']} is reachable from the network, and no credentials.tokens is set. Make a tokens "
            f"file ({CREATE_HINT}) and set credentials.tokens to it; or bind 127.0.0.1; or set credentials.insecure: "
            "true on a network you trust entirely.",
        )
    # fill_defaults gave every manifest a tls mapping: the file's own lines tell whether it has one.
    if raw.get("tls") or ("tls",) in report.lines:
        pair = check_section(raw["tls"], root, report)
        if pair and training["mode"] == "local" and any(s["enabled"] for s in raw["services"].values()):
            check_feedback_host(pair[0], reachable_host(raw["host"]), report)
    _check_dashboard(raw, ports, report)
    groups: dict[str, tuple[str, int]] = {}  # process -> (its first service, its port)
    for name, spec in raw["services"].items():
        at = ("services", name)
        if name in (TRAINING, DASHBOARD):
            report(at, f"'{name}' is the {name.replace('-', ' ')}'s own row; name this service differently.")
        port = spec["port"]
        if _check_process(raw, name, spec, groups, report):
            pass  # a later service of a process: the process's port was checked at its first service
        elif port and port in ports:
            other = ".".join(ports[port])
            report((*at, "port"), f"port {port} is already taken by {other}. Give every service its own port (or 0).")
        elif port:
            ports[port] = (*at, "port")
        if spec["mqtt"] and not raw.get("mqtt", {}).get("broker"):
            report(
                (*at, "mqtt"), "mqtt: true needs a broker: add mqtt: {broker: mqtt://127.0.0.1:1883} to the manifest."
            )
        folder = root / spec["config_set"]
        if not spec["enabled"] or not config_sets:
            continue
        from mlrm.config.loader import load_config_set  # here: only commands that check config sets pay for it

        try:
            load_config_set(folder)
        except ConfigError as exc:
            report((*at, "config_set"), f"the config set {folder} does not load; its problems follow.")
            report.problems.extend(exc.problems)


def _check_dashboard(raw: dict[str, Any], ports: dict[int, tuple[str, ...]], report: Report) -> None:
    """The dashboard's port is its own, it is not open to a network, and it can read guarded services."""
    section = raw.get("dashboard")
    if not section:
        return
    credentials = raw.get("credentials") or {}
    port, host = section["port"], section.get("host", raw["host"])
    if port and port in ports:
        report(("dashboard", "port"), f"port {port} is already taken by {'.'.join(ports[port])}. Pick another (or 0).")
    elif port:
        ports[port] = ("dashboard", "port")
    if not is_loopback(host) and not credentials.get("tokens") and not credentials.get("insecure"):
        report(
            ("dashboard", "host"),
            f"the dashboard would listen on {host}, reachable from the network, and no credentials.tokens is set "
            f"(anyone could retrain and roll back). Make a tokens file ({CREATE_HINT}) and set credentials.tokens; "
            "or bind the dashboard to 127.0.0.1.",
        )
    if credentials.get("tokens") and not section.get("token_file"):
        report(
            ("dashboard",),
            "credentials.tokens is set, so the dashboard needs a token to read the services: make one (mlrm token "
            "create dashboard --scopes predict,metrics,admin --file TOKENS_FILE > secrets/dashboard.token) and set "
            "dashboard.token_file: secrets/dashboard.token.",
        )


def _check_process(
    raw: dict[str, Any], name: str, spec: dict[str, Any], groups: dict[str, tuple[str, int]], report: Report
) -> bool:
    """Check a service's `process`; True when an earlier service of the same process took the port already."""
    process = spec.get("process")
    if process is None:
        return False
    if process in raw["services"] or process in (TRAINING, DASHBOARD):
        report(("services", name, "process"), f"process '{process}' is also the name of a service; give the "
               f"process a name of its own (e.g. {process}-group): it names the process's log file.")  # fmt: skip
    first = groups.setdefault(process, (name, spec["port"]))
    if first[0] == name:
        return False
    if spec["port"] != first[1]:
        report(("services", name, "port"), f"port {spec['port']}: the services of process '{process}' are served "
               f"by one gunicorn on one port, and services.{first[0]}.port is {first[1]}. Give them the same port.")  # fmt: skip
    return True


def reachable_host(host: str) -> str:
    """Where this machine reaches a service bound to host (a wildcard address through loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _resolve(root: Path, value: str) -> Path:
    return Path(os.path.normpath(root / os.path.expanduser(value)))


def load_manifest(path: str | Path, *, config_sets: bool = True) -> Manifest:
    """Load, validate and resolve a gateway manifest (ConfigError if unusable).

    config_sets=False skips loading every config set it names (a second
    or so of imports), for commands that only read where things are."""
    file = Path(path)
    if not file.is_file():
        hint = "Pass a gateway manifest such as services/demo.yaml."
        raise ConfigError([ConfigProblem(str(file), "", f"no such file. {hint}")])
    data, lines = read_yaml(file)
    report = Report(file, lines)
    if not isinstance(data, dict):
        report((), f"expected a mapping of keys (name, services, training, ...), got {describe(data)}.")
        raise ConfigError(report.problems)
    schema = build_schema()
    check_schema(schema, data, report, "mlrm schema --gateway")
    if report.problems:
        raise ConfigError(report.problems)
    fill_defaults(schema, data)
    for spec in data["services"].values():
        fill_defaults(SERVICE, spec)
    root = _resolve(file.resolve().parent, data["root"])
    _check(data, root, report, config_sets)
    if report.problems:
        raise ConfigError(report.problems)
    return _build(file, root, data, report, lines)


def _build(file: Path, root: Path, data: dict[str, Any], report: Report, lines: dict[KeyPath, int]) -> Manifest:
    services = tuple(
        ServiceSpec(
            name=name,
            config_set=_resolve(root, spec["config_set"]),
            port=int(spec["port"]),
            workers=int(spec["workers"]),
            mqtt=bool(spec["mqtt"]),
            enabled=bool(spec["enabled"]),
            probes=Probes(**spec["health"]),
            process=spec.get("process"),
        )
        for name, spec in data["services"].items()
    )
    data_dir = _resolve(root, data.get("data_dir") or f"var/{data['name']}")
    log_dir = _resolve(root, data["log_dir"]) if data.get("log_dir") else data_dir / "logs"
    section = data["training"]
    config_root: Path | None = None
    if section["mode"] == "local":
        sets = [s.config_set for s in services if s.enabled]
        if "config_root" in section:
            config_root = _resolve(root, section["config_root"])
        elif sets:
            config_root = Path(os.path.commonpath([s.parent for s in sets]))
        for spec in services:
            if config_root is not None and spec.enabled and config_root not in spec.config_set.parents:
                report(
                    ("services", spec.name, "config_set"),
                    f"{spec.config_set} is not under training.config_root ({config_root}), so the training "
                    "service could not update it. Move it there or set training.config_root.",
                )
        if report.problems:
            raise ConfigError(report.problems)
    # Services run with root as their working directory, so a path under root
    # is given relative to it (readable in `ps` and logs).
    default_store = data_dir / "training.sqlite"
    if root in default_store.parents:
        default_store = default_store.relative_to(root)
    store = section.get("store") or f"sqlite:///{default_store}"
    training = TrainingSpec(
        mode=section["mode"],
        port=int(section["port"]),
        store=store,
        config_root=config_root,
        url=section.get("url"),
        probes=Probes(**section["health"]),
        follow_interval=float(section["follow_interval"]),
        workers=int(section["workers"]),
    )
    sup = data["supervision"]
    credentials = data.get("credentials") or {}
    tls = data.get("tls") or {}
    board = data.get("dashboard")
    dashboard = None
    if board:
        dashboard = DashboardSpec(
            host=board.get("host", data["host"]),
            port=int(board["port"]),
            interval=float(board["interval"]),
            minutes=float(board["minutes"]),
            token_file=_resolve(root, board["token_file"]) if board.get("token_file") else None,
        )
    return Manifest(
        path=file.resolve(),
        name=data["name"],
        description=data.get("description", ""),
        host=data["host"],
        root=root,
        data_dir=data_dir,
        log_dir=log_dir,
        log_max_bytes=int(float(data["log_max_mb"]) * 1024 * 1024),
        log_keep=int(data["log_keep"]),
        log_format=str(data["log_format"]),
        working_copies=bool(data["working_copies"]),
        services=services,
        training=training,
        mqtt_broker=(data.get("mqtt") or {}).get("broker"),
        supervision=Supervision(**{k: float(v) for k, v in sup.items()}),
        raw=data,
        lines=lines,
        tokens=_resolve(root, credentials["tokens"]) if credentials.get("tokens") else None,
        client_token=_resolve(root, credentials["client_token"]) if credentials.get("client_token") else None,
        insecure=bool(credentials.get("insecure")),
        certfile=_resolve(root, tls["certfile"]) if tls else None,
        keyfile=_resolve(root, tls["keyfile"]) if tls else None,
        dashboard=dashboard,
    )
