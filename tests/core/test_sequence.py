"""Sequence config sets without torch: windows from ordered records, the
chronological split, the checks of the sequence section, and predict with
ready windows or buffered records (a random forest reads flattened windows)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from mlrm.config import ServiceConfig, load_config_set
from mlrm.core.sequence import WindowEncoder, split_indices
from mlrm.core.service import Service
from mlrm.errors import ConfigError, RequestError
from mlrm.training import trainer

BASE: dict[str, Any] = {
    "name": "press",
    "inputs": {"force": {"type": "number", "min": -100, "max": 100}, "speed": {"type": "number"}},
    "target": {"name": "state", "kind": "classification", "labels": ["ok", "jam"]},
    "sequence": {"window": 4, "step": 2, "order_by": "t", "stream": "press"},
    "algorithm": {"name": "random_forest_classifier", "hyperparameters": {"n_estimators": 10}},
    "training": {"min_rows": 2},
}


def config_set(tmp_path: Path, **changes: Any) -> ServiceConfig:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    folder = tmp_path / "press"
    folder.mkdir(exist_ok=True)
    (folder / "service.yaml").write_text(yaml.safe_dump(raw))
    return load_config_set(folder)


def records(n: int, stream: str = "p1", start: float = 0.0) -> list[dict[str, Any]]:
    """force = i, speed = 10 i; every fourth record jams."""
    return [{"press": stream, "t": start + i, "force": float(i), "speed": 10.0 * i,
             "state": "jam" if i % 4 == 3 else "ok"} for i in range(n)]  # fmt: skip


def problems(tmp_path: Path, **changes: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config_set(tmp_path, **changes)
    return str(caught.value)


def test_windows_follow_each_stream_in_time_order(tmp_path: Path) -> None:
    config = config_set(tmp_path)
    rows = records(9, "p1") + records(6, "p2", start=100)
    random.Random(0).shuffle(rows)  # order comes from t, streams from 'press'
    X, y, rejected, groups, _ = WindowEncoder.of(config).training_windows(rows)  # type: ignore[union-attr]
    assert rejected == [] and X.shape == (5, 4, 2)
    assert X[:, :, 0].tolist() == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [0, 1, 2, 3], [2, 3, 4, 5]]
    assert y is not None and y.tolist() == [1, 0, 1, 1, 0]  # the label of the last record
    assert sorted(set(groups.tolist())) == [0, 1] and groups.tolist().count(groups[-1]) == 2


def test_majority_label_and_a_rejected_record_cuts_the_stream(tmp_path: Path) -> None:
    config = config_set(tmp_path, sequence__label="majority", sequence__step=1)
    rows = records(10)
    rows[6]["force"] = 1000  # out of range: no window may span it
    X, y, rejected, _, _ = WindowEncoder.of(config).training_windows(rows)  # type: ignore[union-attr]
    assert [e.pointer for e in rejected] == ["/rows/6/force"]
    assert X[:, :, 0].tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]
    assert y is not None and y.tolist() == [0, 0, 0]


def test_forecast_target_may_be_an_input_and_comes_from_the_next_records(tmp_path: Path) -> None:
    config = config_set(
        tmp_path, target={"name": "force", "kind": "regression"}, sequence__horizon=2,
        algorithm={"name": "random_forest_regressor", "hyperparameters": {"n_estimators": 5}},
    )  # fmt: skip
    rows = [{k: v for k, v in r.items() if k != "state"} for r in records(9)]
    X, y, rejected, _, _ = WindowEncoder.of(config).training_windows(rows)  # type: ignore[union-attr]
    assert rejected == [] and X[:, :, 0].tolist() == [[0, 1, 2, 3], [2, 3, 4, 5]]
    assert y is not None and y.tolist() == [[4, 5], [6, 7]]
    assert "target must not be an input" in problems(tmp_path, target={"name": "force", "kind": "classification",
                                                                        "labels": [1, 2]})  # fmt: skip


def test_holdout_is_the_end_of_each_stream_and_shares_no_record_with_training(tmp_path: Path) -> None:
    config = config_set(tmp_path, training__holdout=0.25)
    data = trainer.dataset(config, records(41, "p1") + records(21, "p2", start=500))
    train, hold = trainer.split(config, data)
    # 19 + 9 windows; a quarter of each stream held out; one overlapping window per stream dropped.
    assert (len(data), len(hold), len(train)) == (28, 5 + 2, 13 + 6)
    starts: dict[int, list[tuple[float, str]]] = {g: [] for g in (0, 1)}
    for part, name in ((train, "train"), (hold, "hold")):
        assert part.groups is not None
        for window, g in zip(part.X, part.groups, strict=True):
            starts[g].append((window[0, 0], name))
    for g, seen in starts.items():
        last_train = max(s for s, name in seen if name == "train")
        first_hold = min(s for s, name in seen if name == "hold")
        assert last_train + 4 <= first_hold, f"stream {g}: training windows overlap the holdout"
    with pytest.raises(Exception, match="too few windows per stream"):
        split_indices(config, np.array([0, 1, 2]))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"sequence": None, "algorithm": {"name": "lstm_classifier"}},
         "algorithm.name: 'lstm_classifier' reads windows of records: add a sequence section"),
        ({"sequence__stream": "force"}, "sequence.stream: 'force' is declared under inputs"),
        ({"sequence__order_by": "state"}, "sequence.order_by: 'state' is the target"),
        ({"sequence__inputs": ["force", "sped"]}, "sequence.inputs[1]: 'sped' is not an input. Did you mean 'speed'?"),
        ({"sequence__horizon": 3}, "sequence.horizon: 'horizon' is for forecasting (regression)"),
        ({"sequence__window": 1}, "sequence.window: 1 is less than the minimum of 2"),
        ({"sequence__label": "first"}, "sequence.label: 'first' is not allowed."),
        ({"target": {"name": "force", "kind": "regression"}, "sequence__horizon": 0,
          "algorithm": {"name": "ridge"}}, "sequence.horizon: horizon 0 predicts 'force' at the window's last record"),
        ({"sequence__order_by": "press"}, "order_by and stream name the same field"),
    ],
    ids=["windowed-algorithm-without-sequence", "stream-is-an-input", "time-is-the-target", "misspelt-input",
         "horizon-for-classification", "window-too-short", "unknown-label-rule", "horizon-0-leaks-target",
         "time-is-the-stream"],
)  # fmt: skip
def test_broken_sequence_sections_name_the_key_and_the_fix(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    assert expected in problems(tmp_path, **changes)


def test_buffer_settings_are_not_part_of_what_the_model_learned(tmp_path: Path) -> None:
    a = config_set(tmp_path)
    b = config_set(tmp_path, sequence__buffer={"max_streams": 5})
    assert a.signature() == b.signature() and a.signature()["sequence"]["window"] == 4
    assert b.section("sequence")["buffer"] == {"max_streams": 5, "file": "var/sequence-buffer.sqlite",
                                               "idle_seconds": 300}  # fmt: skip


@pytest.fixture
def service(tmp_path: Path) -> Service:
    """A trained press service: a random forest over flattened windows."""
    config = config_set(tmp_path)
    trainer.train(config, records(60, "p1") + records(60, "p2"))
    return Service(config)


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "state"} for r in rows]


def test_a_ready_window_is_ordered_by_time_and_answered(service: Service) -> None:
    window = strip(records(4))
    answer = service.predict([{"window": window}, {"window": window[::-1]}])
    assert answer["predictions"][0] in ("ok", "jam") and answer["predictions"][0] == answer["predictions"][1]
    assert answer["probabilities"][0] == answer["probabilities"][1]
    assert answer["windows"] == [{"stream": None, "pending": False, "needed": 0}] * 2


def test_single_records_wait_for_a_full_window_then_every_step(service: Service) -> None:
    rows = strip(records(8, "p9"))
    first = service.predict(rows[:3])
    assert first["predictions"] == [None, None, None]
    assert first["windows"] == [{"stream": "p9", "pending": True, "needed": n} for n in (3, 2, 1)]
    full = service.predict(rows[3:6])  # the 4th record fills the window; then one answer every 2 (step)
    answered = [p is not None for p in full["predictions"]]
    assert answered == [True, False, True]
    assert [w["needed"] for w in full["windows"]] == [0, 1, 0]
    same = service.predict([{"window": rows[2:6]}])
    assert same["probabilities"][0] == full["probabilities"][2] and full["probabilities"][1] is None
    other = service.predict([{**rows[0], "press": "p10"}])
    assert other["windows"] == [{"stream": "p10", "pending": True, "needed": 3}]


def test_a_bad_record_buffers_nothing_and_is_named_by_pointer(service: Service) -> None:
    rows = strip(records(4, "p7"))
    with pytest.raises(RequestError) as caught:
        service.predict([rows[0], {**rows[1], "force": "x"}, {"force": 1.0, "speed": 2.0},
                         {"window": [rows[0], rows[1], {**rows[2], "t": "soon"}, rows[3]]}])  # fmt: skip
    assert [e.pointer for e in caught.value.errors] == [
        "/instances/1/force", "/instances/2/press", "/instances/2/t", "/instances/3/window/2/t"]  # fmt: skip
    assert service.predict([rows[0]])["windows"][0]["needed"] == 3  # the first call buffered nothing
    with pytest.raises(RequestError) as caught:
        service.predict([{"window": rows[:3]}, {"window": rows, "extra": 1}])
    assert [e.pointer for e in caught.value.errors] == ["/instances/0/window", "/instances/1/extra"]


def test_no_instances_and_many_unknown_window_keys_are_one_problem_each(service: Service) -> None:
    with pytest.raises(RequestError) as caught:
        service.predict([])
    assert [(e.pointer, e.detail) for e in caught.value.errors] == [
        ("/instances", 'expected a non-empty array of windows ({"window": [record, ...]}) or records')
    ]
    window = {"window": strip(records(4)), **{f"k{i}": 1 for i in range(90_000)}}
    with pytest.raises(RequestError) as caught:
        service.predict([window])
    assert [e.pointer for e in caught.value.errors] == ["/instances/0/k0"]


def test_idle_streams_start_afresh_and_streams_are_bounded(tmp_path: Path) -> None:
    config = config_set(tmp_path, sequence__buffer={"max_streams": 2, "idle_seconds": 60})
    trainer.train(config, records(40, "p1"))
    service = Service(config)
    now = [1000.0]
    assert service.sequence is not None and service.model is not None and service.model.windows is not None
    service.sequence.buffer(service.model.windows).clock = lambda: now[0]
    service.predict(strip(records(2, "a")))
    service.predict(strip(records(2, "b")))
    with pytest.raises(RequestError) as caught:
        service.predict(strip(records(1, "c")))
    assert caught.value.status == 429 and caught.value.errors[0].pointer == "/instances/0"
    now[0] += 61  # a and b fall silent: c takes a place, b restarts its window
    assert service.predict(strip(records(1, "c")))["windows"][0]["needed"] == 3
    assert service.predict(strip(records(1, "b", start=10)))["windows"][0]["needed"] == 3


def test_a_record_older_than_the_whole_window_is_refused(service: Service) -> None:
    rows = strip(records(6, "p3", start=10))
    service.predict(rows)
    with pytest.raises(RequestError) as caught:
        service.predict([{**rows[0], "t": 1.0}])
    assert caught.value.errors[0].pointer == "/instances/0/t"
    assert "older than all 4 records buffered for stream 'p3'" in caught.value.errors[0].detail
    assert service.predict([{**rows[0], "t": 15.5}])["windows"][0]["pending"]  # late, but inside the window


def test_spec_defaults(tmp_path: Path) -> None:
    spec = config_set(tmp_path, sequence={"window": 3}).sequence
    assert spec is not None
    assert (spec.step, spec.order_by, spec.stream, spec.label, spec.horizon) == (1, None, None, "last", 0)
    assert spec.inputs == ("force", "speed")


def test_buffered_records_survive_a_killed_server(tmp_path: Path, serve: Any) -> None:
    config = config_set(tmp_path)
    trainer.train(config, records(60, "p1"))
    rows = strip(records(4, "p5"))
    url, process = serve(config.path)
    answer = requests.post(f"{url}/v1/predict", json={"instances": rows[:2]}, timeout=10).json()
    assert answer["windows"][-1] == {"stream": "p5", "pending": True, "needed": 2}
    process.kill()  # SIGKILL: no chance to flush anything
    url, _ = serve(config.path)
    answer = requests.post(f"{url}/v1/predict", json={"instances": rows[2:]}, timeout=10).json()
    assert [w["needed"] for w in answer["windows"]] == [1, 0] and answer["predictions"][1] in ("ok", "jam")
