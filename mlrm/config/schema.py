"""The JSON Schema of `service.yaml`, built from the algorithm registry.

The algorithm name's enum comes from the registry, so the schema, the docs
and the code cannot drift apart. `mlrm schema` prints it; the shipped copy
`mlrm/schema/service.schema.json` is checked against it by the tests.
"""

from __future__ import annotations

from typing import Any

from mlrm import algorithms

SCHEMA_ID = "https://mlrm.dev/schema/service.schema.json"

CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"]
REGRESSION_METRICS = ["rmse", "mae", "r2"]
ANOMALY_METRICS = ["anomaly_rate"]
# Metrics where lower is better (the promotion gate needs to know).
LOWER_IS_BETTER = {"rmse", "mae", "anomaly_rate"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    if required:
        schema["required"] = required
    return schema


def _str(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$", "maxLength": 64}
SCALAR = {"type": ["string", "number", "integer", "boolean"]}

INPUT = _obj(
    {
        "type": _str("Value type of the feature.", enum=["number", "integer", "boolean", "category"]),
        "description": _str("What the feature measures."),
        "unit": _str("Unit of measurement, for people and the API docs.", examples=["°C", "%", "µm"]),
        "min": {"type": "number", "description": "Smallest accepted value (number, integer)."},
        "max": {"type": "number", "description": "Largest accepted value (number, integer)."},
        "values": {
            "type": "array",
            "items": SCALAR,
            "minItems": 1,
            "uniqueItems": True,
            "description": "Allowed values of a category feature.",
        },
        "default": {**SCALAR, "description": "Value used when a request leaves the feature out."},
        "required": {
            "type": "boolean",
            "description": "Whether a request must send it (default: true unless a default is given).",
        },
    },
    ["type"],
)

TARGET = _obj(
    {
        "name": {**NAME, "description": "Column name of the target in training data."},
        "kind": _str("What is predicted.", enum=["classification", "regression"]),
        "labels": {
            "type": "array",
            "items": {"type": ["string", "integer"]},
            "minItems": 2,
            "uniqueItems": True,
            "description": "Class labels (classification).",
        },
        "unit": _str("Unit of the predicted value (regression)."),
        "description": _str("What the target means."),
    },
    ["name", "kind"],
)

PREPROCESSING = _obj(
    {
        "missing": _str(
            "How an optional feature left out without a default is filled.",
            enum=["mean", "median", "zero"],
            default="mean",
        ),
        "scaling": _str("How numeric columns are scaled.", enum=["standard", "minmax", "none"], default="standard"),
        "one_hot": {"type": "boolean", "default": True, "description": "One-hot encode category features."},
    }
)

TRAINING = _obj(
    {
        "holdout": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.2},
        "metric": _str(
            "Metric for evaluation and the promotion gate.",
            enum=CLASSIFICATION_METRICS + REGRESSION_METRICS + ANOMALY_METRICS,
        ),
        "seed": {"type": "integer", "minimum": 0, "default": 42},
        "min_rows": {"type": "integer", "minimum": 2, "default": 20},
        "keep_versions": {"type": "integer", "minimum": 1, "default": 10},
        "triggers": _obj(
            {
                "new_samples": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "default": None,
                    "description": (
                        "Retrain when this many samples arrived since the last training run "
                        "(promoted or refused; since the current version before the first run)."
                    ),
                },
                "interval": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "default": None,
                    "description": "Retrain every this many seconds when new samples arrived.",
                },
                "drift": _obj(
                    {
                        "threshold": {
                            "type": ["number", "null"],
                            "exclusiveMinimum": 0,
                            "default": None,
                            "description": (
                                "Retrain when an ML service reports drift (GET /v1/drift) with the largest PSI "
                                "over the inputs at or above this (0.25: significant); null: off."
                            ),
                        },
                        "min_rows": {
                            "type": "integer",
                            "minimum": 1,
                            "default": 200,
                            "description": "Rows the drift window must hold before this trigger may fire.",
                        },
                    }
                ),
                "performance": _obj(
                    {
                        "max_drop": {
                            "type": ["number", "null"],
                            "minimum": 0,
                            "default": None,
                            "description": (
                                "Retrain when the live metric from feedback (GET /v1/performance) is worse than "
                                "the version's holdout metric by more than this; null: off."
                            ),
                        },
                        "min_rows": {
                            "type": "integer",
                            "minimum": 1,
                            "default": 50,
                            "description": "Scored predictions the rolling window must hold before this trigger may fire.",
                        },
                    }
                ),
            }
        ),
        "data": _obj(
            {
                "files": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "uniqueItems": True,
                    "default": [],
                    "description": (
                        "CSV files in the config set (e.g. data/initial.csv) every training job learns from "
                        "besides the stored samples, checked like posted samples."
                    ),
                },
                "samples": _obj(
                    {
                        "last": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "default": None,
                            "description": "Train only on the newest this many stored samples; null: all.",
                        },
                        "max_age": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "default": None,
                            "description": "Train only on stored samples received in the last this many seconds.",
                        },
                    }
                ),
            }
        ),
        "gate": _obj(
            {
                "min_score": {"type": ["number", "null"], "default": None},
                "max_drop": {"type": "number", "minimum": 0, "default": 0.02},
                "min_rows": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 20,
                    "description": (
                        "Rows neither the candidate nor the current version trained on that the gate needs to "
                        "compare them; with fewer the current version stays (docs/drift.md)."
                    ),
                },
            }
        ),
        "retention": _obj(
            {
                "max_age": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "default": None,
                    "description": "The training service deletes stored samples older than this many seconds.",
                },
                "max_count": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "default": None,
                    "description": "The training service keeps at most this many stored samples (oldest go first).",
                },
            }
        ),
    }
)

LIMITS = _obj(
    {
        "max_instances": {"type": "integer", "minimum": 1, "default": 1000},
        "max_body_bytes": {"type": "integer", "minimum": 1024, "default": 1048576},
    }
)

SERVING = _obj(
    {
        "reload_interval": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "Seconds between checks for a new current version (0 turns it off).",
        },
        "drift": _obj(
            {
                "enabled": {
                    "type": "boolean",
                    "default": True,
                    "description": "Compare what the service is asked with the version's reference profile "
                    "(GET /v1/drift, mlrm_drift_* metrics; docs/drift.md).",
                },
                "window": {
                    "type": "integer",
                    "minimum": 60,
                    "default": 3600,
                    "description": "Seconds of traffic the drift figures cover (a sliding window, in 12 steps).",
                },
                "min_rows": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 200,
                    "description": "Rows the window must hold before a drift level other than 'insufficient' is given.",
                },
                "max_rate": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 500,
                    "description": "Rows per second a process counts at most; above it, an even sample "
                    "(every k-th request), which bounds what monitoring costs.",
                },
            }
        ),
    }
)

_TOPIC = {"type": ["string", "null"]}

# Connection settings (broker, identity, auth, TLS, outbox) are shared by every
# role that talks MQTT; `topics` holds each role's own topics: predict_* for the
# ML service, training_in for the training service. Secrets never live here:
# only the name of an environment variable or a file that holds them.
MQTT = _obj(
    {
        "broker": _str(
            "Broker URL: mqtt://host[:1883] or mqtts://host[:8883] (TLS).",
            examples=["mqtt://localhost:1883", "mqtts://broker.plant.local:8883"],
        ),
        "client_id": _str(
            "MQTT client id; {service}, {role} (predict or training) and {hostname} are filled in. "
            "Must be unique per broker and stable across restarts (the broker keeps the session under it).",
            default="mlrm-{hostname}-{service}-{role}",
        ),
        "protocol": _str("MQTT protocol version.", enum=["mqttv5", "mqttv311"], default="mqttv5"),
        "keepalive": {"type": "integer", "minimum": 5, "maximum": 65535, "default": 30},
        "qos": {
            "type": "integer",
            "enum": [0, 1, 2],
            "default": 1,
            "description": "QoS of subscriptions and publishes.",
        },
        "clean_start": {
            "type": "boolean",
            "default": False,
            "description": "Start a fresh session on connect. false keeps the session, so the broker holds "
            "QoS 1/2 messages for us while we are away and redelivers unacknowledged ones.",
        },
        "session_expiry": {
            "type": "integer",
            "minimum": 0,
            "default": 86400,
            "description": "Seconds the broker keeps our session after a disconnect (MQTT 5).",
        },
        "reconnect": _obj(
            {
                "min_delay": {"type": "number", "exclusiveMinimum": 0, "default": 1},
                "max_delay": {"type": "number", "exclusiveMinimum": 0, "default": 60},
            }
        ),
        "username_env": _str("Environment variable that holds the user name."),
        "username_file": _str("File that holds the user name."),
        "password_env": _str("Environment variable that holds the password."),
        "password_file": _str("File that holds the password (e.g. a container secret)."),
        "tls": _obj(
            {
                "ca_file": _str("CA certificate(s) that signed the broker's certificate (default: system CAs)."),
                "cert_file": _str("Client certificate, for brokers that require one."),
                "key_file": _str("Private key of the client certificate."),
                "insecure": {
                    "type": "boolean",
                    "default": False,
                    "description": "Skip the broker host name check (testing only).",
                },
            }
        ),
        "topics": _obj(
            {
                "predict_in": {
                    **_TOPIC,
                    "default": "mlrm/{service}/predict",
                    "description": "Where measurements arrive. {service} is the service name; a level written "
                    "{name} matches any value (like +) and the value can be used in the out topics; + and a "
                    "final # match without being kept. null: no predictions over MQTT.",
                    "examples": ["plant/{device}/pcb/measurements"],
                },
                "predict_out": {
                    **_TOPIC,
                    "default": "mlrm/{service}/predictions",
                    "description": "Where predictions go; may use {service} and the {name}s of predict_in.",
                    "examples": ["plant/{device}/pcb/predictions"],
                },
                "errors": {
                    **_TOPIC,
                    "default": "mlrm/{service}/errors",
                    "description": "Where problems with received messages go; may use {service} and the {name}s "
                    "of every in topic. null: errors are only logged and counted.",
                },
                "training_in": {
                    **_TOPIC,
                    "default": None,
                    "description": "Where labelled training samples arrive: the training service stores them, and the "
                    "ML service's bridge also reads them to score predictions sent with ids (never storing "
                    "them); same syntax as predict_in. null (default): no samples over MQTT.",
                    "examples": ["plant/{device}/pcb/samples"],
                },
            }
        ),
        "outbox": _obj(
            {
                "path": _str(
                    "SQLite file of messages waiting to go out, relative to the config set; {role} and "
                    "{service} are filled in.",
                    default="var/mqtt-{role}-outbox.sqlite",
                ),
                "max_messages": {"type": "integer", "minimum": 1, "default": 10000},
                "on_full": _str(
                    "What a full outbox does with one more message.",
                    enum=["drop_oldest", "reject_new"],
                    default="drop_oldest",
                ),
                "synchronous": _str(
                    "full: every stored message survives power loss (an fsync each); normal: survives a "
                    "crash of mlrm, faster.",
                    enum=["full", "normal"],
                    default="full",
                ),
            }
        ),
    },
    ["broker"],
    description="Optional: take part in MQTT (see docs/mqtt.md).",
)

FEEDBACK = _obj(
    {
        "training_service": {
            "type": ["string", "null"],
            "pattern": "^https?://",
            "default": None,
            "description": (
                "Base URL of the training service that POST /v1/feedback forwards labelled samples to, "
                "e.g. http://127.0.0.1:8100. The environment variable MLRM_TRAINING_SERVICE overrides it. "
                "With neither, POST /v1/feedback answers 503."
            ),
        },
        "outbox": _str(
            "SQLite file that keeps feedback until the training service has acknowledged it "
            "(relative to the config set folder).",
            default="feedback-outbox.sqlite",
        ),
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 2.0,
            "description": "Seconds one delivery attempt may take before the feedback waits in the outbox.",
        },
        "retry_interval": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5.0,
            "description": "Seconds between delivery attempts while the training service is unreachable.",
        },
    }
)

SEQUENCE = _obj(
    {
        "window": {"type": "integer", "minimum": 2, "maximum": 100000, "description": "Records per window."},
        "step": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100000,
            "default": 1,
            "description": "Records from one window's start to the next: in training data, and between answers "
            "to buffered single records.",
        },
        "inputs": {
            "type": "array",
            "items": NAME,
            "minItems": 1,
            "uniqueItems": True,
            "description": "Inputs that feed the window, in this order (default: every input).",
        },
        "order_by": {
            **NAME,
            "default": "arrival",
            "description": "Record field holding each record's time (a number, or an ISO 8601 string), "
            "or 'arrival': the order records come in.",
        },
        "stream": {
            **NAME,
            "description": "Record field naming the stream (device, machine, worker) a record belongs to; "
            "a window never mixes streams. Leave it out for a single stream.",
        },
        "label": _str(
            "Classification: a window's label is its last record's (last) or its most frequent one (majority).",
            enum=["last", "majority"],
        ),
        "horizon": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10000,
            "description": "Forecasting (regression): predict the target for the next this many records after "
            "the window (default 1); 0 predicts it at the window's last record.",
        },
        "buffer": _obj(
            {
                "file": _str(
                    "SQLite file buffering single records per stream, relative to the config set.",
                    default="var/sequence-buffer.sqlite",
                ),
                "max_streams": {"type": "integer", "minimum": 1, "default": 1000},
                "idle_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": 300,
                    "description": "A stream silent this long starts a fresh window (and may make room for others).",
                },
            }
        ),
    },
    ["window"],
    description="Windows of ordered records, for algorithms that read sequences (and tabular ones, flattened).",
)


def build_schema() -> dict[str, Any]:
    """The complete JSON Schema (draft 2020-12) of service.yaml."""
    algorithm = _obj(
        {
            "name": _str("Short name from the algorithm registry.", enum=algorithms.names()),
            "hyperparameters": {
                "type": "object",
                "description": "Passed to the algorithm; checked against its own parameters.",
                "default": {},
            },
        },
        ["name"],
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlrm service.yaml",
        **_obj(
            {
                "name": {**NAME, "description": "Service name: URL path segment and metrics label."},
                "description": _str("What the service predicts, for people."),
                "inputs": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": NAME,
                    "additionalProperties": INPUT,
                    "description": "Features by name, in the order the model sees them.",
                },
                "target": TARGET,
                "algorithm": algorithm,
                "preprocessing": PREPROCESSING,
                "training": TRAINING,
                "sequence": SEQUENCE,
                "limits": LIMITS,
                "serving": SERVING,
                "mqtt": MQTT,
                "feedback": FEEDBACK,
            },
            ["name", "inputs", "algorithm"],
        ),
    }
