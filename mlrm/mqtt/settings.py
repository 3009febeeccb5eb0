"""The `mqtt` section of service.yaml, resolved for one role at start.

(Checked at load by mlrm.config.mqtt_checks.) `MqttSettings.from_config(config, role)`
gives one role's view: the shared connection settings plus that role's topics. Secrets (user name,
password) are read from the environment or a file only when a client starts,
so `mlrm validate` can run where they are not available.
"""

from __future__ import annotations

import copy
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrm.config.loader import fill_defaults
from mlrm.config.mqtt_checks import IN_TOPICS, parse_broker
from mlrm.config.schema import MQTT
from mlrm.config.service_config import ServiceConfig
from mlrm.config.topics import TopicTemplate, parse
from mlrm.errors import ConfigError, ConfigProblem

# `mlrm serve --mqtt-broker URL` hands the broker to the bridge process through this.
BROKER_ENV = "MLRM_MQTT_BROKER"

PREDICT, TRAINING = "predict", "training"


@dataclass(frozen=True)
class OutboxSettings:
    """Where and how messages wait while the broker is away."""

    path: Path
    max_messages: int
    on_full: str
    synchronous: str


@dataclass(frozen=True)
class MqttSettings:
    """One role's MQTT settings (role: 'predict' for the ML service, 'training')."""

    service: str
    role: str
    broker: str
    tls: bool
    host: str
    port: int
    client_id: str
    protocol: str
    keepalive: int
    qos: int
    clean_start: bool
    session_expiry: int
    reconnect_min: float
    reconnect_max: float
    topics: dict[str, TopicTemplate | None]
    outbox: OutboxSettings
    max_payload: int
    raw: dict[str, Any]
    file: Path

    @classmethod
    def from_config(cls, config: ServiceConfig, role: str) -> MqttSettings:
        """The settings of role from a loaded config set; ConfigError if it has no mqtt section.

        The environment variable MLRM_MQTT_BROKER (set by `mlrm serve --mqtt-broker`)
        overrides the broker; without an mqtt section it stands for one with every default.
        """
        file = config.path / "service.yaml"
        raw = config.raw.get("mqtt")
        override = os.environ.get(BROKER_ENV)
        if override:
            raw = copy.deepcopy(raw) if isinstance(raw, dict) else {}
            raw["broker"] = override
            fill_defaults(MQTT, raw)
        if not isinstance(raw, dict):
            raise ConfigError([ConfigProblem(
                str(file), "mqtt", "no mqtt section. Add one, e.g.\n    mqtt:\n      broker: mqtt://localhost:1883"
            )])  # fmt: skip
        tls, host, port = parse_broker(raw["broker"])
        fields = {"service": config.name, "role": role, "hostname": socket.gethostname()}
        box = raw["outbox"]
        path = Path(box["path"].format(service=config.name, role=role))
        topics = {
            key: None if value is None else parse(value, inbound=key in IN_TOPICS)
            for key, value in raw["topics"].items()
        }
        return cls(
            service=config.name,
            role=role,
            broker=raw["broker"],
            tls=tls,
            host=host,
            port=port,
            client_id=raw["client_id"].format(**fields),
            protocol=raw["protocol"],
            keepalive=int(raw["keepalive"]),
            qos=int(raw["qos"]),
            clean_start=bool(raw["clean_start"]),
            session_expiry=int(raw["session_expiry"]),
            reconnect_min=float(raw["reconnect"]["min_delay"]),
            reconnect_max=max(float(raw["reconnect"]["max_delay"]), float(raw["reconnect"]["min_delay"])),
            topics=topics,
            outbox=OutboxSettings(
                path if path.is_absolute() else config.path / path,
                int(box["max_messages"]),
                str(box["on_full"]),
                str(box["synchronous"]),
            ),
            max_payload=config.limits.max_body_bytes,
            raw=raw,
            file=file,
        )

    def topic(self, key: str) -> TopicTemplate | None:
        return self.topics.get(key)

    def secret(self, what: str) -> str | None:
        """The user name or password from its *_env or *_file key (None if neither is set)."""
        env, file = self.raw.get(f"{what}_env"), self.raw.get(f"{what}_file")
        if env:
            value = os.environ.get(env)
            if value is None:
                raise self._problem(f"{what}_env", f"environment variable {env} is not set. "
                                    f"Set it before starting, e.g. export {env}=...")  # fmt: skip
            return value
        if file:
            path = Path(file) if Path(file).is_absolute() else self.file.parent / file
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise self._problem(f"{what}_file", f"cannot read {path}: {exc.strerror}.") from None
        return None

    def tls_files(self) -> dict[str, str | None]:
        """ca_file, cert_file, key_file resolved against the config set; ConfigError if one is missing."""
        out: dict[str, str | None] = {}
        for key in ("ca_file", "cert_file", "key_file"):
            value = (self.raw.get("tls") or {}).get(key)
            if value:
                path = Path(value) if Path(value).is_absolute() else self.file.parent / value
                if not path.is_file():
                    raise self._problem(f"tls.{key}", f"{path} does not exist or is not a file.")
                out[key] = str(path)
            else:
                out[key] = None
        return out

    def _problem(self, key: str, message: str) -> ConfigError:
        return ConfigError([ConfigProblem(str(self.file), f"mqtt.{key}", message)])
