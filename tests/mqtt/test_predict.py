"""The transport-free predict handler: payload bytes + topic -> messages, validated like REST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from mlrm.config import ServiceConfig, load_config_set
from mlrm.config.topics import parse
from mlrm.core.answer import Answer
from mlrm.core.service import Service
from mlrm.mqtt.messages import Inbound
from mlrm.mqtt.predict import PredictHandler
from tests.toolkit.files import copy_config_set


def _handler(config: ServiceConfig, errors: str | None = "plant/{device}/errors", **kwargs: Any) -> PredictHandler:
    return PredictHandler(
        Service(config),
        parse("plant/{device}/in", inbound=True),
        parse("plant/{device}/{service}/out", inbound=False),
        parse(errors, inbound=False) if errors else None,
        **kwargs,
    )


def _one(handler: PredictHandler, payload: Any, topic: str = "plant/l1/in") -> tuple[str, dict[str, Any]]:
    handled = handler.handle(topic, payload if isinstance(payload, bytes) else orjson.dumps(payload))
    assert handled.ack and len(handled.messages) == 1
    return handled.messages[0].topic, orjson.loads(handled.messages[0].payload)


def test_single_record_answers_like_rest(
    config: ServiceConfig, client: FlaskClient, pcb_instance: dict[str, Any]
) -> None:
    topic, body = _one(_handler(config), {**pcb_instance, "id": "m-1", "timestamp": 1714557600})
    rest = client.post("/v1/predict", json={"instances": [pcb_instance]}).get_json()
    assert topic == "plant/l1/pcb-inspection/out"
    assert body["prediction"] == rest["predictions"][0]
    assert body["probabilities"] == pytest.approx(rest["probabilities"][0])
    assert {k: body[k] for k in ("id", "timestamp", "device", "model")} == {
        "id": "m-1", "timestamp": 1714557600, "device": "l1", "model": {"name": "pcb-inspection", "version": 1},
    }  # fmt: skip
    assert body["took_ms"] > 0


def test_batch_answers_in_order(config: ServiceConfig, pcb_rows: list[dict[str, Any]]) -> None:
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_rows[:4]]
    _, body = _one(_handler(config), {"id": 9, "instances": rows})
    assert body["id"] == 9 and len(body["predictions"]) == 4 and len(body["probabilities"]) == 4
    assert body["predictions"] == Service(config).predict(rows)["predictions"]


def test_invalid_record_goes_to_errors_with_pointers_into_the_payload(
    config: ServiceConfig, client: FlaskClient, pcb_instance: dict[str, Any]
) -> None:
    bad = {**pcb_instance, "volume_pct": "high", "colour": "red", "id": "m-2"}
    topic, body = _one(_handler(config), bad, "plant/l9/in")
    assert topic == "plant/l9/errors"
    assert body["id"] == "m-2" and body["device"] == "l9" and body["topic"] == "plant/l9/in"
    assert body["status"] == 422 and body["type"].endswith("/invalid-request")
    pointers = {e["pointer"]: e["detail"] for e in body["errors"]}
    assert pointers.keys() == {"/volume_pct", "/colour"}
    rest = client.post("/v1/predict", json={"instances": [{k: v for k, v in bad.items() if k != "id"}]}).get_json()
    assert {e["pointer"].replace("/instances/0", ""): e["detail"] for e in rest["errors"]} == pointers

    _, batch = _one(_handler(config), {"instances": [pcb_instance, {"volume_pct": -1}]})
    assert batch["errors"][0]["pointer"].startswith("/instances/1/")


@pytest.mark.parametrize(
    ("payload", "status", "detail"),
    [
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[1, 2]", 422, "expected a JSON object"),
        (b'{"instances": []}', 422, "'instances' is empty"),
        (b'{"instances": [], "extra": 1}', 422, "unknown key 'extra'"),
        (b'{"instances": {"a": 1}}', 422, "expected an array of objects"),
        (b"{" + b" " * 2000 + b"}", 413, "the limit is 1024"),
    ],
)
def test_malformed_payloads_are_named(config: ServiceConfig, payload: bytes, status: int, detail: str) -> None:
    _, body = _one(_handler(config, max_payload=1024), payload)
    assert body["status"] == status and detail in body["detail"]


def test_too_many_instances_and_no_error_topic(config: ServiceConfig, pcb_instance: dict[str, Any]) -> None:
    handler = _handler(config, errors=None)
    handled = handler.handle("plant/l1/in", orjson.dumps({"instances": [pcb_instance] * 1001}))
    assert handled.ack and handled.messages == [] and handled.error == "invalid"


def test_untrained_service_answers_not_ready(tmp_path: Path, pcb_instance: dict[str, Any]) -> None:
    config = load_config_set(copy_config_set("pcb-inspection", tmp_path, learned=False))
    handled = _handler(config).handle("plant/l1/in", orjson.dumps(pcb_instance))
    body = orjson.loads(handled.messages[0].payload)
    assert handled.error == "not-ready" and body["status"] == 503 and "mlrm train" in body["detail"]


def test_a_burst_costs_one_model_call_and_errors_stay_with_their_message(
    config: ServiceConfig, pcb_rows: list[dict[str, Any]]
) -> None:
    handler = _handler(config)
    calls: list[int] = []
    predict = handler.service.predict

    def counted_predict(instances: Any) -> Answer:
        calls.append(len(instances))
        return predict(instances)

    handler.service.predict = counted_predict  # type: ignore[method-assign]
    rows = [{k: v for k, v in r.items() if k != "result"} for r in pcb_rows[:6]]
    good = [Inbound(f"plant/d{i}/in", orjson.dumps({**row, "id": i}), 0.0) for i, row in enumerate(rows[:4])]
    good.append(Inbound("plant/d4/in", orjson.dumps({"id": 4, "instances": rows[4:6]}), 0.0))
    results = handler.handle_many(good)
    assert calls == [6]
    alone = Service(config).predict(rows)["predictions"]
    bodies = [orjson.loads(r.messages[0].payload) for r in results]
    assert [b["prediction"] for b in bodies[:4]] == alone[:4] and bodies[4]["predictions"] == alone[4:]
    assert [r.messages[0].topic for r in results] == [f"plant/d{i}/pcb-inspection/out" for i in range(5)]

    calls.clear()
    mixed = [good[0], Inbound("plant/x/in", orjson.dumps({**rows[1], "volume_pct": -5, "id": "bad"}), 0.0), good[2],
             Inbound("plant/y/in", b"nope", 0.0)]  # fmt: skip
    topics = [r.messages[0].topic for r in handler.handle_many(mixed)]
    assert topics == ["plant/d0/pcb-inspection/out", "plant/x/errors", "plant/d2/pcb-inspection/out", "plant/y/errors"]
    assert calls == [3, 1, 1, 1]  # the joint call failed, so each message was predicted alone
