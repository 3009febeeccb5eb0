"""The JSON Schema of gateway manifests (`services/<gateway>.yaml`), built in code.

`mlrm schema --gateway` prints it, editors read the copy in `.mlrm/`, and
docs/manifest-reference.md is generated from it, so the three cannot drift.
Meaning that a schema cannot say (ports taken twice, files that must load)
is checked by mlrm.gateway.manifest.
"""

from __future__ import annotations

from typing import Any

from mlrm.config.schema import NAME, _obj, _str

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
        "process": {
            **NAME,
            "description": "Run this service in one process with every other service that names the same "
            "process: one `mlrm serve` (one gunicorn master and its workers) for all their config sets, each "
            "at /v1/models/NAME/..., on the one port they all give (the largest `workers` of them). Saves a "
            "master, its workers and their shared libraries per service (docs/gateway.md#memory). Default: "
            "none, a process of its own, because one process is one failure domain: a crash, the restart "
            "after it, a worker killed for memory or a hung model in one set takes every set of its process "
            "with it, and `mlrm up` can restart or reload them only together.",
        },
        "health": _probes(ML_PROBES),
    },
    ["config_set", "port"],
)

TRAINING_SECTION = _obj(
    {
        "mode": _str(
            "local: this gateway runs the training service; remote: consumers send training data to `url`, and "
            "the config sets follow the versions it makes current; off: no training service.",
            enum=["local", "remote", "off"],
            default="off",
        ),
        "port": {**PORT, "default": 8100, "description": "Port of the local training service (0: pick a free one)."},
        "workers": {
            "type": "integer",
            "minimum": 1,
            "maximum": 32,
            "default": 2,
            "description": "gunicorn workers of the local training service's API. 1 on a small gateway: each "
            "worker costs about 10 MB; a second one keeps ingest answering while the first is busy.",
        },
        "store": _str(
            "Where the local training service keeps samples (default: SQLite in data_dir); relative to root",
            examples=["sqlite:///var/demo/training.sqlite"],
        ),
        "config_root": _str("Folder of the config sets it trains (default: the folder holding the services' sets)."),
        "url": {**URL, "description": "Base URL of the training service elsewhere (mode: remote)."},
        "follow_interval": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5,
            "description": "mode: remote: seconds between two asks for each config set's current version at `url` "
            "(a 304 while it is unchanged); a new one is downloaded, verified and made current here. While `url` "
            "cannot be reached the asks back off, up to 60 s.",
        },
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
            "File holding the token the ML services send to the training service (feedback; scope ingest) and "
            "`mlrm status` sends to read versions (scope predict), relative to root. Passed as MLRM_TOKEN_FILE: "
            "the token itself never goes into the manifest."
        ),
        "insecure": {
            "type": "boolean",
            "default": False,
            "description": "true: start on a host off loopback without tokens (every route open; warned at start).",
        },
    },
    description="API tokens (docs/security.md).",
)


TLS = _obj(
    {
        "certfile": _str(
            "PEM certificate (chain) every service serves HTTPS with (`--certfile`), relative to root. Also what "
            "the gateway's probes and the ML services' feedback to the local training service trust "
            "(MLRM_CA_FILE), so it must name the address services are reached at, e.g. IP:127.0.0.1."
        ),
        "keyfile": _str("The certificate's unencrypted PEM private key (`--keyfile`), relative to root."),
    },
    description="HTTPS for every service this gateway starts; both keys or none (docs/security.md).",
)


# The row name of the dashboard in tables and the state file.
DASHBOARD = "dashboard"
DASHBOARD_PROBES = {"live": "/healthz", "ready": "/healthz"}

DASHBOARD_SECTION = _obj(
    {
        "port": {
            **PORT,
            "description": "TCP port of the dashboard: a page for a browser with every service's state, request "
            "rate, latency, errors, predictions by label, samples and jobs (docs/dashboard.md); 0 picks a free port.",
        },
        "host": _str(
            "Address the dashboard binds (default: the gateway's host). Off loopback it needs credentials.tokens: "
            "viewers send a token with scope metrics, actions (retrain, roll back) one with admin."
        ),
        "interval": {
            "type": "number",
            "minimum": 0.5,
            "maximum": 60,
            "default": 2,
            "description": "Seconds between the dashboard's samples of every service (/metrics, the training "
            "service's jobs); every open page polls at the same pace.",
        },
        "minutes": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 120,
            "default": 10,
            "description": "How far back the charts go (the samples the dashboard keeps, in memory only).",
        },
        "token_file": _str(
            "File holding the token the dashboard sends to read the services when credentials.tokens is set "
            "(scopes predict, metrics and admin: the version served, /metrics, jobs, versions), relative to root. "
            "The token itself never goes into the manifest."
        ),
    },
    ["port"],
    description="A dashboard in the browser for this gateway (docs/dashboard.md); without this section: none.",
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
                "log_format": {
                    "type": "string",
                    "enum": ["text", "json"],
                    "default": "text",
                    "description": "Log lines of mlrm up and every service: text (time, level, component, message) "
                    "or json (one object a line, for a log shipper); `mlrm up --log-format` overrides it; a "
                    "change takes a restart (docs/metrics.md#logs).",
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
                "tls": TLS,
                "dashboard": DASHBOARD_SECTION,
            },
            ["name", "services"],
        ),
    }
