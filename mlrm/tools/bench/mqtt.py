"""Prediction cycles over MQTT, as a device does: publish to predict_in, wait for the answer on predict_out.

Messages go one at a time (a device waits for its answer). The round trip is
timed in this process from publishing to the answer arriving; `compute` is
the answer's `took_ms` (the bridge's time from receiving the message to the
answer built: decoding, validation, the model); ingest + transport is the
rest (the broker both ways, the bridge's queueing, publishing the answer).
"""

from __future__ import annotations

import os
import queue
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from mlrm.config.service_config import ServiceConfig
from mlrm.config.topics import TopicTemplate
from mlrm.errors import StateError
from mlrm.mqtt.settings import BROKER_ENV, PREDICT, MqttSettings
from mlrm.tools.bench.rest import spread

LEVEL = "bench"  # what a wildcard level of predict_in is filled with
FIRST_ANSWER_S = 30.0  # the bridge connects and subscribes after the server is ready
ANSWER_S = 30.0


def concrete(template: TopicTemplate, service: str) -> str:
    """A topic to publish on that predict_in matches: {service} filled, every wildcard `bench`."""
    return "/".join(service if level == "{service}" else LEVEL if "{" in level or level in "+#" else level
                    for level in template.levels)  # fmt: skip


def settings_for(config: ServiceConfig, broker: str) -> MqttSettings:
    """The predict role's settings as `mlrm serve --mqtt-broker broker` resolves them."""
    before = os.environ.get(BROKER_ENV)
    os.environ[BROKER_ENV] = broker
    try:
        return MqttSettings.from_config(config, PREDICT)
    finally:
        if before is None:
            os.environ.pop(BROKER_ENV, None)
        else:
            os.environ[BROKER_ENV] = before


def measure_mqtt(config: ServiceConfig, broker: str, instances: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """count sequential predictions over the broker; round trip, compute (took_ms), ingest + transport, ms."""
    s = settings_for(config, broker)
    predict_in, predict_out = s.topic("predict_in"), s.topic("predict_out")
    if predict_in is None or predict_out is None:
        raise StateError(
            f"{s.file}: mqtt.topics.predict_in or predict_out is null: no predictions over MQTT to measure"
        )
    publish_on = concrete(predict_in, config.name)
    kept = predict_in.match(publish_on, config.name) or {}
    answers_on = predict_out.render(config.name, kept)
    errors = s.topic("errors")
    inbox: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"mlrm-bench-{os.getpid()}")
    subscribed = queue.Queue[bool]()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        c.subscribe([(answers_on, 1), *([(errors.filter(config.name), 1)] if errors else [])])

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.put(True)
    client.on_message = lambda c, u, m: inbox.put((m.topic, bytes(m.payload), time.perf_counter()))
    if s.tls:
        client.tls_set()
    client.connect(s.host, s.port, keepalive=30)
    client.loop_start()
    try:
        try:
            subscribed.get(timeout=FIRST_ANSWER_S)
        except queue.Empty:
            raise StateError(f"MQTT: no subscription acknowledged by {broker} in {FIRST_ANSWER_S:g} s") from None
        _first_answer(client, publish_on, instances[0], inbox, broker)
        trips, compute = [], []
        began = time.perf_counter()
        for i in range(count):
            body = orjson.dumps({"id": f"bench-{i}", "instances": [instances[i % len(instances)]]})
            sent = time.perf_counter()
            client.publish(publish_on, body, qos=s.qos)
            topic, payload, arrived = _answer(inbox, f"bench-{i}", broker)
            answer = orjson.loads(payload)
            if topic != answers_on:
                raise StateError(f"MQTT: the service answered on {topic}: {answer.get('detail') or answer}")
            trips.append((arrived - sent) * 1000)
            compute.append(float(answer["took_ms"]))
        wall = time.perf_counter() - began
    finally:
        client.loop_stop()
        client.disconnect()
    return {
        "broker": broker,
        "publish_on": publish_on,
        "answers_on": answers_on,
        "qos": s.qos,
        "round_trip_ms": spread(trips),
        "compute_ms": spread(compute),
        "ingest_transport_ms": spread([t - c for t, c in zip(trips, compute)]),
        "messages_per_s": round(count / wall, 1) if wall > 0 else None,
    }


def _first_answer(
    client: mqtt.Client, topic: str, instance: dict[str, Any], inbox: queue.Queue[Any], broker: str
) -> None:
    """Publish until the bridge answers once (it subscribes some time after the REST side is ready)."""
    deadline = time.monotonic() + FIRST_ANSWER_S
    while time.monotonic() < deadline:
        client.publish(topic, orjson.dumps({"id": "bench-warmup", "instances": [instance]}), qos=1)
        try:
            _answer(inbox, "bench-warmup", broker, timeout=1.0)
            break
        except StateError:
            continue
    else:
        raise StateError(f"MQTT: no answer on the predictions topic through {broker} in {FIRST_ANSWER_S:g} s; "
                         f"is the service's MQTT bridge connected (GET /v1/mqtt)?")  # fmt: skip
    while not inbox.empty():  # answers to repeated warm-ups
        inbox.get_nowait()


def _answer(inbox: queue.Queue[Any], wanted: str, broker: str, timeout: float = ANSWER_S) -> tuple[str, bytes, float]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            topic, payload, arrived = inbox.get(timeout=left)
        except queue.Empty:
            break
        try:
            if orjson.loads(payload).get("id") == wanted:
                return topic, payload, arrived
        except (orjson.JSONDecodeError, AttributeError):
            continue
    raise StateError(f"MQTT: no answer to {wanted} through {broker} in {timeout:g} s")
