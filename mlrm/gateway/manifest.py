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

from mlrm.config.schema import NAME, _obj, _str
from mlrm.config.yamldoc import KeyPath, Report, check_schema, describe, fill_defaults, read_yaml
from mlrm.credentials import CREATE_HINT, is_loopback
from mlrm.errors import ConfigError, ConfigProblem

SCHEMA_ID = "https://mlrm.dev/schema/gateway.schema.json"
# The row name of the training service in tables and the state file.
TRAINING = "training-service"

ML_PROBES = {"live": "/v2/health/live", "ready": "/v2/health/ready"}
# CONTRACT(issue 3): the training service answers GET /v1/health (live and ready).
# A manifest can override them (training.health).
TRAINING_PROBES = {"live": "/v1/health", "ready": "/v1/health"}


def _probes(defaults: dict[str, str]) -> dict[str, Any]:
    path = {"type": "string", "pattern": "^/"}
    return _obj(
        {
            "live": {**path, "default": defaults["live"], "description": "GET answering 200 once the process serves."},
            "ready": {**path, "default": defaults["ready"], "description": "GET answering 200 once it can answer."},
        },
        description="HTTP paths probed to tell live (serving) and ready (able to answer).",
    )


PORT = {"type": "integer", "minimum": 0, "maximum": 65535}
URL = {"type": "string", "pattern": "^https?://[^\\s/]+"}

SERVICE = _obj(
    {
        "config_set": _str("Folder of the config set, relative to root", examples=["configs/pcb-inspection"]),
        "port": {**PORT, "description": "TCP port of its REST API; 0 picks a free port at start (see `mlrm status`)."},
        "workers": {"type": "integer", "minimum": 1, "maximum": 32, "default": 1, "description": "gunicorn workers."},
        "mqtt": {"type": "boolean", "default": False, "description": "Also take predictions over MQTT (mqtt.broker)."},
        "enabled": {"type": "boolean", "default": True, "description": "false: keep the entry, start nothing."},
        "health": _probes(ML_PROBES),
    },
    ["config_set", "port"],
)

TRAINING_SECTION = _obj(
    {
        "mode": _str(
            "local: this gateway runs the training service; remote: consumers send training data to `url`; "
            "off: no training service.",
            enum=["local", "remote", "off"],
            default="off",
        ),
        "port": {**PORT, "default": 8100, "description": "Port of the local training service (0: pick a free one)."},
        "store": _str(
            "Where the local training service keeps samples (default: SQLite in data_dir); relative to root",
            examples=["sqlite:///var/demo/training.sqlite"],
        ),
        "config_root": _str("Folder of the config sets it trains (default: the folder holding the services' sets)."),
        "url": {**URL, "description": "Base URL of the training service elsewhere (mode: remote)."},
        "health": _probes(TRAINING_PROBES),
    },
    description="The training service that takes samples from consumers and retrains the config sets.",
)

SUPERVISION = _obj(
    {
        "start_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 60,
            "description": "Seconds to wait for live.",
        },
        "stop_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 15,
            "description": "Seconds a service may take to finish in-flight requests after SIGTERM; then SIGKILL.",
        },
        "backoff_initial": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 1,
            "description": "First restart delay (s).",
        },
        "backoff_max": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "Longest restart delay (s).",
        },
        "stable_after": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "Seconds up after which the restart delay starts again from backoff_initial.",
        },
    },
    description="How `mlrm up` starts, restarts and stops the services.",
)


CREDENTIALS = _obj(
    {
        "tokens": _str(
            "Tokens file every service checks (`--tokens`; relative to root): make it with `mlrm token create "
            "NAME --scopes ... --file FILE`. Needed when host is not loopback. Holds hashes, never tokens."
        ),
        "client_token": _str(
            "File holding the token the ML services send to the training service (feedback; scope ingest), "
            "relative to root. Passed as MLRM_TOKEN_FILE: the token itself never goes into the manifest."
        ),
        "insecure": {
            "type": "boolean",
            "default": False,
            "description": "true: start on a host off loopback without tokens (every route open; warned at start).",
        },
    },
    description="API tokens (docs/security.md).",
)


REFERENCE_HEADER = """# Gateway manifest reference (services/*.yaml)

Generated by `mlrm schema --gateway --markdown` from the JSON Schema that
`mlrm up` checks; do not edit by hand. Keys marked *required* must be
present; every other key takes the default shown. Unknown keys are errors.
Relative paths start at `root`. `mlrm up MANIFEST --check` validates a
manifest and every config set it names without starting anything.

| key | type | default | allowed / notes |
|---|---|---|---|
"""


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a gateway manifest."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlrm gateway manifest",
        **_obj(
            {
                "name": {**NAME, "description": "Gateway name, for tables and logs."},
                "description": _str("What this gateway does, for people."),
                "root": _str("Folder relative paths start at, relative to this file.", default=".."),
                "host": _str("Address every service binds.", default="127.0.0.1"),
                "data_dir": _str("Where state and the training store go (relative to root; default var/<name>)."),
                "log_dir": _str("One log file per service goes here (default: <data_dir>/logs)."),
                "working_copies": {
                    "type": "boolean",
                    "default": False,
                    "description": "true: run every config set from a copy under <data_dir>/configs, so new "
                    "versions are written there and the sets this manifest names stay as they are (service.yaml "
                    "is copied again at every start and reload; learned/ once).",
                },
                "log_max_mb": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": 10,
                    "description": "A log file is rotated (x.log -> x.log.1 ...) when it reaches this size.",
                },
                "log_keep": {
                    "type": "integer",
                    "minimum": 0,
                    "default": 3,
                    "description": "Rotated files kept per log.",
                },
                "services": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": NAME,
                    "additionalProperties": SERVICE,
                    "description": "ML services by name: each serves one config set.",
                },
                "training": TRAINING_SECTION,
                "mqtt": _obj(
                    {"broker": {"type": "string", "pattern": "^mqtts?://", "description": "Broker for mqtt: true."}},
                    description="Gateway-wide MQTT settings.",
                ),
                "supervision": SUPERVISION,
                "credentials": CREDENTIALS,
            },
            ["name", "services"],
        ),
    }


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


@dataclass(frozen=True)
class TrainingSpec:
    """The training service: run here (local), elsewhere (remote), or none (off)."""

    mode: str
    port: int
    store: str
    config_root: Path | None
    url: str | None
    probes: Probes


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
    client_token: Path | None = None
    insecure: bool = False

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
    for name, spec in raw["services"].items():
        at = ("services", name)
        if name == TRAINING:
            report(at, f"'{TRAINING}' is the training service's own row; name this service differently.")
        port = spec["port"]
        if port and port in ports:
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
    )
    sup = data["supervision"]
    credentials = data.get("credentials") or {}
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
    )
