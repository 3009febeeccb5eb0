"""The ML service's MQTT bridge: one process that answers measurements from the broker.

It loads its own Service (so Service.maybe_reload picks up new versions on
the next message, as REST workers do), routes `topics.predict_in` to a
PredictHandler and publishes the answers through the outbox. When
`topics.training_in` is set it also reads the labelled samples there,
read-only, to score the predictions they name by id (mlrm.mqtt.scoring; the
training service stores them from its own subscription). `mlrm serve`
runs it beside gunicorn under a supervisor (mlrm.mqtt.bridge_process);
`mlrm mqtt CONFIG_SET` runs it alone in the foreground.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlrm import logs
from mlrm.config import ServiceConfig, load_config_set
from mlrm.core.service import Service
from mlrm.errors import ConfigError, ConfigProblem, MlrmError
from mlrm.mqtt.client import MqttClient
from mlrm.mqtt.predict import PredictHandler
from mlrm.mqtt.scoring import ScoringHandler
from mlrm.mqtt.settings import PREDICT, MqttSettings
from mlrm.storage.bridge_status import write_status

log = logging.getLogger("mlrm.mqtt.bridge")


class Bridge:
    """Service + PredictHandler (+ ScoringHandler) + MqttClient, wired; start() and stop()."""

    def __init__(self, config: ServiceConfig, *, status_path: Path | None = None, window: int = 20) -> None:
        self.config = config
        self.settings = MqttSettings.from_config(config, PREDICT)
        predict_in, predict_out = self.settings.topic("predict_in"), self.settings.topic("predict_out")
        training_in = self.settings.topic("training_in")
        if (predict_in is None or predict_out is None) and training_in is None:
            raise ConfigError([ConfigProblem(
                str(self.settings.file), "mqtt.topics.predict_in",
                "is null, so the ML service has nothing to do over MQTT. Set a topic, e.g. "
                "predict_in: plant/{device}/measurements, or run only the training service.",
            )])  # fmt: skip
        self.service = Service(config)
        self.handler: PredictHandler | None = None
        self.scoring: ScoringHandler | None = None
        self.status_path = status_path
        self.client = MqttClient(self.settings, window=window, on_tick=self.write_status)
        if predict_in is not None and predict_out is not None:
            errors = self.settings.topic("errors")
            limit = self.settings.max_payload
            self.handler = PredictHandler(self.service, predict_in, predict_out, errors, max_payload=limit)
            self.client.route_batch(self.handler.filter, self.handler.handle_many, PREDICT)
        if training_in is not None:
            # A plain subscription under this role's own client id, never a shared one ($share/...): a shared
            # group would hand each sample to one member only, the training service or us; this way both get all.
            self.scoring = ScoringHandler(self.service, training_in, max_payload=self.settings.max_payload)
            self.client.route(self.scoring.filter, self.scoring.handle, "scoring")

    def status(self) -> dict[str, Any]:
        body = self.client.status()
        body["model"] = {"name": self.service.name, "version": self.service.version, "ready": self.service.ready}
        return body

    def write_status(self) -> None:
        if self.status_path is None:
            return
        try:
            write_status(self.status_path, self.status())
        except OSError as exc:  # e.g. the runtime folder is gone while `mlrm serve` stops
            log.debug("cannot write the status file %s: %s", self.status_path, exc)

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()
        self.write_status()


def run(config: ServiceConfig, status_path: Path | None = None) -> int:
    """Run the bridge until SIGTERM or SIGINT."""
    done = threading.Event()
    bridge = Bridge(config, status_path=status_path)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    bridge.start()
    h = bridge.handler
    if h is not None:
        log.info("'%s': answering %s on %s, errors to %s", config.name, h.predict_in.text, h.predict_out.text,
                 h.errors.text if h.errors else "the log only")  # fmt: skip
    if bridge.scoring is not None:
        log.info("'%s': scoring predictions by the labels on %s (read only: the training service stores them)",
                 config.name, bridge.scoring.training_in.text)  # fmt: skip
    done.wait()
    log.info("'%s': stopping the MQTT bridge", config.name)
    bridge.stop()
    return 0


def configure_logging(level: str = "info", service: str = "mqtt") -> None:
    """mlrm's one log format (mlrm/logs.py; $MLRM_LOG_FORMAT picks text or json), components service.mqtt..."""
    logs.configure(service, None, level)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlrm.mqtt.bridge CONFIG_SET --status FILE` (what the supervisor starts)."""
    p = argparse.ArgumentParser(prog="mlrm.mqtt.bridge")
    p.add_argument("config_set")
    p.add_argument("--status", type=Path)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    configure_logging(args.log_level, Path(args.config_set).name)
    try:
        config = load_config_set(args.config_set)
        configure_logging(args.log_level, config.name)  # the component the service's other lines have
        return run(config, args.status)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MlrmError as exc:
        print(f"mlrm mqtt: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
