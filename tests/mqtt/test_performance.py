"""Performance from feedback over MQTT: predict messages that carry ids, and labels on the samples topic
that score them, read by the ML service's bridge while the training service stores the same messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from sklearn.metrics import f1_score

from mlrm.config import ServiceConfig
from mlrm.config.topics import parse
from mlrm.core.performance import PerformanceMonitor
from mlrm.core.service import Service
from mlrm.mqtt.messages import Inbound
from mlrm.mqtt.predict import PredictHandler
from mlrm.mqtt.samples import SampleHandler
from mlrm.mqtt.scoring import ScoringHandler
from mlrm.storage.performance_log import PerformanceLog
from tests.toolkit.brokers import Broker, Collector, mqtt_config_set, publish
from tests.toolkit.processes import Process, free_port, mlrm_args
from tests.toolkit.waiting import wait_until

SAMPLES = "plant/{device}/pcb/samples"


def _features(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "result"}


def _service(config: ServiceConfig, tmp_path: Path) -> Service:
    service = Service(config)
    service.performance = PerformanceMonitor(config, PerformanceLog(tmp_path / "performance.sqlite"))
    return service


def _predict(service: Service) -> PredictHandler:
    return PredictHandler(
        service,
        parse("plant/{device}/in", inbound=True),
        parse("plant/{device}/out", inbound=False),
        parse("plant/{device}/errors", inbound=False),
    )


def test_ids_on_predict_messages_are_kept_in_a_burst_and_labels_score_them(
    config: ServiceConfig, tmp_path: Path, pcb_rows: list[dict[str, Any]]
) -> None:
    service = _service(config, tmp_path)
    rows = pcb_rows[:6]
    messages = [  # one burst: one model call for all, each message its own ids (or none)
        {"id": "b-1", "instances": [_features(r) for r in rows[:3]], "ids": ["a", "b", 3]},
        {"id": "b-2", "instances": [_features(rows[3])]},  # no ids: answered, not kept
        {"id": "m-1", **_features(rows[4]), "ids": ["e"]},  # one record: a list of one id
        {"id": "m-2", **_features(rows[5]), "ids": ["f"]},
    ]
    handled = _predict(service).handle_many([Inbound("plant/l1/in", orjson.dumps(m)) for m in messages])
    answers = [orjson.loads(h.messages[0].payload) for h in handled]
    assert [a["id"] for a in answers] == ["b-1", "b-2", "m-1", "m-2"]
    predicted = [
        *answers[0]["predictions"],
        answers[1]["predictions"][0],
        answers[2]["prediction"],
        answers[3]["prediction"],
    ]

    scoring = ScoringHandler(service, parse(SAMPLES, inbound=True))
    labels = [dict(r, result=p) for r, p in zip(rows, predicted, strict=True)]  # truths equal to the predictions
    batch = {"id": "s-1", "records": labels[:4], "ids": ["a", "b", "3", "d"]}  # "d" was never predicted with an id
    assert scoring.handle("plant/l1/pcb/samples", orjson.dumps(batch)).messages == []
    assert scoring.handle("plant/l1/pcb/samples", orjson.dumps({"id": "s-2", **labels[4], "ids": ["e"]})).ack
    scoring.handle("plant/l1/pcb/samples", orjson.dumps({"id": "s-3", **labels[5]}))  # no ids: not scored
    report = service.performance_report()
    assert report["window"]["rows"] == 4 and report["rolling"] == 1.0 and report["available"] is True


@pytest.mark.parametrize(
    ("message", "pointer"),
    [
        ({"instances": "ROWS", "ids": ["a"]}, "/ids"),
        ({"instances": "ROWS", "ids": ["a", True]}, "/ids/1"),
        ({"instances": "ROWS", "ids": ["a", ""]}, "/ids/1"),
        ({"ONE": True, "ids": "a"}, "/ids"),
        ({"ONE": True, "ids": [None]}, "/ids/0"),
    ],
)
def test_bad_ids_answer_on_the_errors_topic_and_nothing_is_kept(
    config: ServiceConfig, tmp_path: Path, pcb_rows: list[dict[str, Any]], message: dict[str, Any], pointer: str
) -> None:
    service = _service(config, tmp_path)
    body = {"id": "bad", **message}
    if body.pop("ONE", None):
        body.update(_features(pcb_rows[0]))
    else:
        body["instances"] = [_features(r) for r in pcb_rows[:2]]
    [handled] = _predict(service).handle_many([Inbound("plant/l2/in", orjson.dumps(body))])
    [out] = handled.messages
    problem = orjson.loads(out.payload)
    assert out.topic == "plant/l2/errors" and handled.error == "invalid"
    assert problem["id"] == "bad" and problem["status"] == 422 and problem["errors"][0]["pointer"] == pointer
    assert not (tmp_path / "performance.sqlite").exists()  # nothing predicted, nothing kept


def test_the_training_service_side_checks_ids_and_stores_records_without_them(pcb_rows: list[dict[str, Any]]) -> None:
    stored: list[list[dict[str, Any]]] = []
    handler = SampleHandler(
        "pcb-inspection", parse(SAMPLES, inbound=True), parse("plant/{device}/pcb/errors", inbound=False),
        lambda service, records, message_id: stored.append(records),
    )  # fmt: skip
    topic = "plant/l3/pcb/samples"
    assert handler.handle(topic, orjson.dumps({"id": "s-1", **pcb_rows[0], "ids": ["m-1"]})).messages == []
    assert (
        handler.handle(topic, orjson.dumps({"id": "s-2", "records": pcb_rows[1:3], "ids": ["m-2", 3]})).messages == []
    )
    assert stored == [[pcb_rows[0]], pcb_rows[1:3]]  # ids are for scoring, never stored
    bad = handler.handle(topic, orjson.dumps({"id": "s-3", "records": pcb_rows[3:5], "ids": ["m-4"]}))
    assert orjson.loads(bad.messages[0].payload)["errors"][0]["pointer"] == "/ids" and len(stored) == 2


@pytest.mark.mqtt
def test_labels_on_the_samples_topic_score_mqtt_and_rest_predictions_while_the_training_service_stores_them(
    spawn: Callable[..., Process],
    make_broker: Callable[..., Broker],
    collect: Callable[..., Collector],
    tmp_path: Path,
    pcb_rows: list[dict[str, Any]],
) -> None:
    broker = make_broker()
    broker.start()
    folder = mqtt_config_set(tmp_path, broker.url, topics={"training_in": SAMPLES})
    ts_port, port = free_port(), free_port()
    args = ["training-service", "--config-root", str(folder.parent), "--port", str(ts_port), "--workers", "1"]
    training = spawn(mlrm_args(*args), name="training-service")
    serve = spawn(mlrm_args("serve", str(folder), "--port", str(port), "--workers", "2"), name="serve")
    ts_url, url = f"http://127.0.0.1:{ts_port}", f"http://127.0.0.1:{port}"
    training.wait_http(f"{ts_url}/v1/health")
    training.wait_until(lambda: "training: subscribed to plant/+/pcb/samples" in training.output(), 30, "subscribed")
    serve.wait_http(f"{url}/v2/health/live")

    def bridge() -> dict[str, Any] | None:
        answer = requests.get(f"{url}/v1/mqtt", timeout=5)
        return answer.json() if answer.status_code == 200 else None

    assert wait_until(bridge, 30, "the bridge connected")["subscriptions"] == [
        "plant/+/pcb/measurements", "plant/+/pcb/samples",
    ]  # fmt: skip
    serve.wait_until(lambda: "subscribed to plant/+/pcb/samples" in serve.output(), 30, "the bridge subscribed")
    out = collect(broker.port, ["plant/+/pcb/predictions", "plant/+/pcb/errors"])

    # Predictions: 10 over MQTT in a batch, 1 over MQTT alone, 10 over REST; each with ids.
    rows = pcb_rows[:22]
    mqtt_ids, rest_ids = [f"m-{i}" for i in range(11)], [f"r-{i}" for i in range(10)]
    batch = {"id": "b-1", "instances": [_features(r) for r in rows[:10]], "ids": mqtt_ids[:10]}
    single = {"id": "m-10", **_features(rows[10]), "ids": ["m-10"]}
    bad = {"id": "b-2", "instances": [_features(r) for r in rows[:2]], "ids": ["x", False]}
    publish(broker.port, "plant/line-1/pcb/measurements", [orjson.dumps(m) for m in (batch, single, bad)])
    answers = {body["id"]: (topic, body) for topic, body in out.count(3, timeout=20)}
    assert answers["b-2"][0] == "plant/line-1/pcb/errors" and answers["b-2"][1]["errors"][0]["pointer"] == "/ids/1"
    rest = requests.post(
        f"{url}/v1/predict", json={"instances": [_features(r) for r in rows[11:21]], "ids": rest_ids}, timeout=10
    ).json()
    predicted = [*answers["b-1"][1]["predictions"], answers["m-10"][1]["prediction"], *rest["predictions"]]

    # Labels on the samples topic: the MQTT predictions in a batch and alone, the REST ones, and one without ids.
    labels = [
        {"id": "s-1", "records": rows[:10], "ids": mqtt_ids[:10]},
        {"id": "s-2", **rows[10], "ids": ["m-10"]},
        {"id": "s-3", "records": rows[11:21], "ids": rest_ids},
        {"id": "s-4", **rows[21]},  # stored by the training service, scores nothing
    ]
    publish(broker.port, "plant/line-1/pcb/samples", [orjson.dumps(m) for m in labels])

    def stored() -> int:
        return int(requests.get(f"{ts_url}/v1/services/pcb-inspection/samples/stats", timeout=5).json()["total"])

    def scored() -> dict[str, Any] | None:
        report: dict[str, Any] = requests.get(f"{url}/v1/performance", timeout=5).json()
        return report if report["window"]["rows"] >= 21 else None

    report = wait_until(scored, 30, "21 predictions scored")
    wait_until(lambda: stored() >= 22, 30, "the training service storing every sample")
    assert stored() == 22  # both subscribers got every message: the bridge took none from the training service
    truths = [r["result"] for r in rows[:21]]
    assert report["available"] is True and report["window"]["rows"] == 21 and report["metric"] == "f1_macro"
    assert report["rolling"] == pytest.approx(f1_score(truths, predicted, average="macro"))
    assert report["drop"] == pytest.approx(report["holdout"] - report["rolling"])
    errors = [body for topic, body in out.messages if topic.endswith("/errors")]
    assert [body["id"] for body in errors if isinstance(body, dict)] == ["b-2"]  # the labels caused none
