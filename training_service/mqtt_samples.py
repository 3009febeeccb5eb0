"""Labelled samples over MQTT, stored by the training service exactly once per message.

`mlrm training-service` forks one subscriber process (start()) when a config
set under its root has `mqtt.topics.training_in`. It holds one MqttClient
(role 'training') per such config set, routed by mlrm.mqtt.samples to
SampleSink, which calls TrainingService.add_samples: the REST path's
validation, limits and store. The message's id is the batch's Idempotency-Key,
so the batch and the fact that it was stored commit in one transaction, and a
QoS 1 message redelivered after a lost PUBACK is a replay, not a second batch.

Why the training service subscribes, and not the ML service forwarding over
its outbox: the store is here, so exactly once is one SQLite transaction; a
forwarder would need a second durable hop with its own retries and dedupe,
and samples would stop while no ML service runs.

Why a process of its own: the scheduler forks training jobs, and forking a
process that runs paho's threads is unsafe; gunicorn workers come and go and
would subscribe once each. Forked before gunicorn, from a single-threaded
process, it shares the imports (scikit-learn for validation) copy-on-write.
The clients reconnect with backoff, so a broker that is down at start only
delays the samples; the kept session (clean_start false, a stable client id)
holds what is published meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
from typing import Any

import orjson

from mlrm import logs
from mlrm.errors import ConfigError, FieldError, MlrmError, RequestError
from mlrm.mqtt.settings import TRAINING, MqttSettings
from training_service.children import fork_child
from training_service.core import MAX_KEY_LENGTH, TrainingService
from training_service.services import ConfigRoot
from training_service.settings import Settings

log = logging.getLogger("training_service.mqtt")

KEY_PREFIX = "mqtt:"


def subscriptions(services: ConfigRoot) -> tuple[list[MqttSettings], list[str]]:
    """The training-role MQTT settings of every usable config set with topics.training_in.

    Secrets and TLS files are read now: a set whose are missing gets no
    subscriber and a line saying which key to fix (second item), and the
    service still starts, as it does for a config set it cannot use at all.
    """
    out: list[MqttSettings] = []
    problems: list[str] = []
    for name in services.names():
        config = services.get(name)
        if not isinstance(config.raw.get("mqtt"), dict):
            continue
        settings = MqttSettings.from_config(config, TRAINING)
        if settings.topic("training_in") is None:
            continue
        try:
            settings.secret("username")
            settings.secret("password")
            if settings.tls:
                settings.tls_files()
        except ConfigError as exc:
            problems.append(f"config set '{name}' takes no samples over MQTT: " + "; ".join(map(str, exc.problems)))
            continue
        out.append(settings)
    return out, problems


def idempotency_key(message_id: str) -> str:
    """The batch key of a message: its id, hashed when too long or unprintable for a key."""
    key = KEY_PREFIX + message_id
    if len(key) <= MAX_KEY_LENGTH and key.isprintable():
        return key
    return KEY_PREFIX + "sha256:" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()


class SampleSink:
    """The sink of mlrm.mqtt.samples: validate and commit through TrainingService.add_samples."""

    def __init__(self, core: TrainingService) -> None:
        self.core = core

    def __call__(self, service: str, records: list[dict[str, Any]], message_id: str) -> None:
        body = orjson.dumps({"records": records})
        try:
            response, _ = self.core.add_samples(service, "application/json", body, idempotency_key(message_id))
        except RequestError as exc:
            if exc.kind != "idempotency-key-reused":
                raise
            raise RequestError(
                "Sample id reused", 422, kind="sample-id-reused",
                detail=f"message {message_id!r} was stored before with different samples; nothing was stored "
                "now. Give every new message a new id.",
            ) from None  # fmt: skip
        if response["rejected"]:
            # The good records are committed; reporting the others is all that is left (the ack follows).
            raise partly_rejected(response)


def partly_rejected(response: dict[str, Any]) -> RequestError:
    """The problem for a batch whose good records were stored and others rejected."""
    errors = [
        FieldError(e["pointer"], e["detail"]) for row in response["rows"] if row["status"] == "rejected" for e in row["errors"]
    ]  # fmt: skip
    total = response["accepted"] + response["rejected"]
    return RequestError(
        "Some samples rejected", 422, kind="invalid-samples", errors=errors[:100],
        detail=f"stored {response['accepted']} of {total} records, rejected {response['rejected']} (see errors). "
        "Fix those and send them in a message with a new id.",
    )  # fmt: skip


def run(settings: Settings, services: ConfigRoot, subscribed: list[MqttSettings]) -> int:
    """Subscribe for every config set in subscribed until SIGTERM/SIGINT or the parent is gone."""
    from mlrm.mqtt import samples
    from mlrm.mqtt.client import MqttClient

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    parent = os.getppid()
    from training_service.metrics import TrainingMetrics

    core = TrainingService(settings, services=services)
    core.metrics = TrainingMetrics()  # counted with the API workers' (PROMETHEUS_MULTIPROC_DIR)
    sink = SampleSink(core)
    clients: list[MqttClient] = []
    try:
        for mqtt in subscribed:
            try:
                client = MqttClient(mqtt)
            except MlrmError as exc:  # e.g. another training service owns this outbox
                log.error("'%s': not reading samples over MQTT: %s", mqtt.service, exc)
                continue
            handler = samples.attach(client, sink, max_payload=settings.max_body_bytes)
            clients.append(client)
            client.start()
            errors = handler.errors.text if handler.errors else "the log only"
            log.info("'%s': storing samples from %s, problems to %s", mqtt.service, handler.training_in.text, errors)
        while not done.wait(0.5) and os.getppid() == parent:
            pass
    finally:
        for client in clients:
            client.stop()
    return 0


def start(settings: Settings, services: ConfigRoot) -> int | None:
    """Fork the subscriber process; its pid, or None when no config set takes samples over MQTT.

    Call while this process is single-threaded (before gunicorn).
    """
    subscribed, problems = subscriptions(services)
    for problem in problems:
        log.warning("degraded: %s", problem)
    if not subscribed:
        return None

    def main() -> int:
        from mlrm.mqtt.bridge_process import die_with_parent

        die_with_parent()
        logs.configure("training-service", None, settings.log_level)  # mlrm/logs.py
        return run(settings, services, subscribed)

    return fork_child(main)
