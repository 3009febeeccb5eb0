"""The mqtt section of service.yaml: topic templates and every problem named with its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlrm.config import load_config_set
from mlrm.config.topics import TemplateError, parse
from mlrm.errors import ConfigError
from mlrm.mqtt.settings import PREDICT, MqttSettings
from tests.toolkit.files import copy_config_set


def test_template_keeps_named_levels_and_fills_the_answer_topic() -> None:
    inbound = parse("plant/{device}/{service}/+/measurements", inbound=True)
    assert inbound.names == ("device",)
    assert inbound.filter("pcb") == "plant/+/pcb/+/measurements"
    assert inbound.match("plant/line-3/pcb/x/measurements", "pcb") == {"device": "line-3"}
    assert inbound.match("plant/line-3/other/x/measurements", "pcb") is None
    assert inbound.match("plant/line-3/pcb/x/measurements/more", "pcb") is None
    out = parse("plant/{device}/{service}/predictions", inbound=False)
    assert out.render("pcb", {"device": "line-3"}) == "plant/line-3/pcb/predictions"
    tail = parse("plant/{site}/#", inbound=True)
    assert tail.filter("pcb") == "plant/+/#" and tail.match("plant/s1/a/b", "pcb") == {"site": "s1"}


@pytest.mark.parametrize(
    ("text", "inbound", "message"),
    [
        ("plant/dev-{device}/x", True, "a placeholder must fill a whole level"),
        ("plant/+/x", False, "cannot contain the wildcards + or #"),
        ("plant/#/x", True, "'#' may only be the last level"),
        ("plant/a+b", True, "'+' and '#' must stand alone"),
        ("plant/{de vice}", True, "is not a valid name"),
        ("plant/{id}/x", True, "'id' is a key of the answer payload"),
        ("plant/{d}/{d}", True, "appears twice"),
        ("$SYS/x", True, "belong to the broker"),
        ("", True, "cannot be empty"),
    ],
)
def test_bad_templates_say_how_to_fix_them(text: str, inbound: bool, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("+", r"\+").replace("(", r"\(")):
        parse(text, inbound=inbound)


def _config_with(tmp_path: Path, mqtt: dict[str, Any], inputs: dict[str, Any] | None = None) -> Path:
    folder = copy_config_set("pcb-inspection", tmp_path, learned=False)
    file = folder / "service.yaml"
    data = yaml.safe_load(file.read_text())
    data["mqtt"] = mqtt
    if inputs:
        data["inputs"].update(inputs)
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _problems(folder: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_set(folder)
    return str(info.value)


def test_minimal_section_gets_defaults(tmp_path: Path) -> None:
    config = load_config_set(_config_with(tmp_path, {"broker": "mqtt://localhost"}))
    s = MqttSettings.from_config(config, PREDICT)
    assert (s.host, s.port, s.tls, s.qos, s.clean_start, s.protocol) == ("localhost", 1883, False, 1, False, "mqttv5")
    assert s.topic("predict_in").filter("pcb-inspection") == "mlrm/pcb-inspection/predict"  # type: ignore[union-attr]
    assert s.topic("training_in") is None
    assert s.client_id.endswith("-pcb-inspection-predict")
    assert s.outbox.path == config.path / "var" / "mqtt-predict-outbox.sqlite"
    assert MqttSettings.from_config(config, "training").outbox.path.name == "mqtt-training-outbox.sqlite"
    tls = MqttSettings.from_config(
        load_config_set(_config_with(tmp_path / "b", {"broker": "mqtts://b.local"})), PREDICT
    )
    assert (tls.port, tls.tls) == (8883, True)


def test_out_topic_may_only_use_levels_the_in_topic_keeps(tmp_path: Path) -> None:
    text = _problems(_config_with(tmp_path, {
        "broker": "mqtt://localhost",
        "topics": {"predict_in": "plant/{device}/in", "predict_out": "plant/{devise}/out"},
    }))  # fmt: skip
    assert "service.yaml:" in text and "mqtt.topics.predict_out:" in text
    assert "uses {devise}, but predict_in ('plant/{device}/in') keeps {device}. Did you mean {device}?" in text


def test_errors_topic_must_fit_every_in_topic(tmp_path: Path) -> None:
    text = _problems(_config_with(tmp_path, {
        "broker": "mqtt://localhost",
        "topics": {"predict_in": "plant/{device}/in", "predict_out": "plant/{device}/out",
                   "errors": "plant/{device}/errors", "training_in": "plant/samples"},
    }))  # fmt: skip
    assert "mqtt.topics.errors:" in text and "training_in ('plant/samples') keeps nothing" in text


@pytest.mark.parametrize(
    ("mqtt", "where", "message"),
    [
        ({"broker": "http://localhost"}, "mqtt.broker", "not an MQTT broker URL"),
        ({"broker": "mqtt://user:pw@localhost"}, "mqtt.broker", "do not put a user name or password in the URL"),
        ({"broker": "mqtt://"}, "mqtt.broker", "names no host"),
        ({"broker": "mqtt://h:99999"}, "mqtt.broker", "invalid port"),
        ({"broker": "mqtt://h", "tls": {"ca_file": "ca.pem"}}, "mqtt.tls", "apply to an mqtts:// broker"),
        ({"broker": "mqtt://h", "password_env": "P"}, "mqtt", "a password needs a user name too"),
        ({"broker": "mqtt://h", "username_env": "U", "username_file": "u"}, "mqtt.username_file", "not both"),
        ({"broker": "mqtt://h", "client_id": "gw-{host}"}, "mqtt.client_id", "may use only {service}, {role}"),
        (
            {"broker": "mqtt://h", "client_id": "gw-{service}", "topics": {"training_in": "plant/samples"}},
            "mqtt.client_id",
            "must use {role} when training_in is set",
        ),
        ({"broker": "mqtt://h", "topics": {"predict_out": None}}, "mqtt.topics.predict_out", "set predict_out"),
        ({"broker": "mqtt://h", "password": "secret"}, "mqtt.password", "unknown key 'password'"),
        ({"broker": "mqtt://h", "outbox": {"on_full": "block"}}, "mqtt.outbox.on_full", "drop_oldest, reject_new"),
    ],
)
def test_section_problems_name_key_and_fix(tmp_path: Path, mqtt: dict[str, Any], where: str, message: str) -> None:
    text = _problems(_config_with(tmp_path, mqtt))
    assert f" {where}: " in text and message in text


def test_reserved_payload_keys_cannot_be_inputs(tmp_path: Path) -> None:
    text = _problems(_config_with(tmp_path, {"broker": "mqtt://h"}, inputs={"timestamp": {"type": "number"}}))
    assert "inputs.timestamp: 'timestamp' is a reserved key of MQTT payloads" in text


def test_missing_secret_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config_set(_config_with(tmp_path, {
        "broker": "mqtt://h", "username_env": "NO_SUCH_USER_VAR", "password_file": "missing-password"
    }))  # fmt: skip
    s = MqttSettings.from_config(config, PREDICT)
    with pytest.raises(ConfigError, match="mqtt.username_env: environment variable NO_SUCH_USER_VAR is not set"):
        s.secret("username")
    with pytest.raises(ConfigError, match="mqtt.password_file: cannot read .*missing-password"):
        s.secret("password")
    monkeypatch.setenv("NO_SUCH_USER_VAR", "gw")
    (config.path / "missing-password").write_text("pw\n")
    assert (s.secret("username"), s.secret("password")) == ("gw", "pw")
