"""Chart points from /metrics text as ML services write it: rates, error share, percentiles from
histogram buckets, a restarted service's counters, and label sets the dashboard does not use."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlrm.dashboard.collector import History, drift_of, performance_of
from mlrm.dashboard.metrics import parse, point, quantile
from mlrm.rest.metrics import LATENCY_BUCKETS


def exposition(predict: list[float], statuses: dict[str, int], labels: dict[str, int], version: int = 3) -> str:
    """The /metrics text of a service that answered these requests: mlrm's metric names and buckets,
    written by prometheus_client as a service writes them (with the `model` label of grouped sets)."""
    r = CollectorRegistry()
    requests = Counter("mlrm_requests", "", ["endpoint", "method", "status", "model"], registry=r)
    latency = Histogram("mlrm_request_duration_seconds", "", ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=r)
    for seconds in predict:
        latency.labels("/v1/predict", "pcb").observe(seconds)
    for status, n in statuses.items():
        requests.labels("/v1/predict", "POST", status, "pcb").inc(n)
    requests.labels("/metrics", "GET", "200", "").inc(50)  # scrapes: never counted as work
    requests.labels("/", "GET", "200", "").inc(50)  # the dashboard's own version checks
    latency.labels("/metrics", "").observe(2.0)
    predictions = Counter("mlrm_predictions", "", ["model", "label"], registry=r)
    for label, n in labels.items():
        predictions.labels("pcb", label).inc(n)
    Gauge("mlrm_model_version", "", ["model"], registry=r).labels("pcb").set(version)
    Gauge("mlrm_model_ready", "", ["model"], registry=r).labels("pcb").set(1)
    return generate_latest(r).decode()


def test_a_scrape_counts_work_errors_labels_and_the_version() -> None:
    scrape = parse(exposition([0.004] * 10, {"200": 8, "422": 1, "500": 1}, {"OK": 7, "error": 3}))
    assert scrape.requests == 10 and scrape.errors == 2
    assert scrape.predictions == {"OK": 7.0, "error": 3.0}
    assert scrape.versions == {"pcb": 3} and scrape.ready == {"pcb": True}
    assert scrape.buckets[0.005] == 10 and scrape.buckets[float("inf")] == 10  # the /metrics observation left out


def test_points_between_scrapes_give_rate_errors_and_percentiles() -> None:
    before = parse(exposition([0.004] * 10, {"200": 10}, {"OK": 10}))
    after = parse(exposition([0.004] * 10 + [0.02] * 89 + [0.3], {"200": 99, "500": 1}, {"OK": 100}))
    p = point(before, after, 10.0)
    assert p["rate"] == 9.0 and p["errors"] == round(1 / 90, 4)
    assert 10.0 < p["p50"] <= 25.0  # 89 of the 90 new ones in the (10, 25] ms bucket
    assert 250.0 < p["p99"] <= 500.0  # the 90th of 90 (rank 89.1) in the (250, 500] ms bucket
    assert point(after, after, 2.0) == {"rate": 0.0, "errors": None, "p50": None, "p99": None,
                                        "psi": None, "prediction_psi": None, "rolling": None, "holdout": None}  # fmt: skip


def test_a_restarted_service_counts_from_zero_not_negative() -> None:
    before = parse(exposition([0.004] * 100, {"200": 100}, {"OK": 100}))
    after = parse(exposition([0.004] * 4, {"200": 4}, {"OK": 4}))
    assert point(before, after, 2.0)["rate"] == 2.0
    history = History.empty(10)
    history.add(100.0, before)
    history.add(102.0, after)
    assert history.series()["rate"] == [2.0]
    assert history.labels() == {"OK": {"total": 4.0, "recent": 4.0}}


def test_quantiles_follow_prometheus_histogram_quantile() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == 0.1
    assert quantile(0.75, buckets) == 0.15000000000000002
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(0.1, 0.0), (float("inf"), 5.0)]) == 0.1  # beyond the largest bound: that bound


def test_extra_labels_such_as_model_are_summed_and_kept_apart_where_shown() -> None:
    text = """# TYPE mlrm_requests counter
mlrm_requests_total{endpoint="/v1/predict",method="POST",model="a",status="200"} 3.0
mlrm_requests_total{endpoint="/v1/predict",method="POST",model="b",status="503"} 1.0
# TYPE mlrm_predictions counter
mlrm_predictions_total{label="OK",model="a"} 3.0
mlrm_predictions_total{label="OK",model="b"} 5.0
"""
    scrape = parse(text)
    assert scrape.requests == 4 and scrape.errors == 1
    assert scrape.predictions == {"a: OK": 3.0, "b: OK": 5.0}


MONITORED = """# TYPE mlrm_drift_psi gauge
mlrm_drift_psi{input="volume_pct",model="pcb"} 0.31
mlrm_drift_psi{input="area_pct",model="pcb"} 0.02
mlrm_drift_psi{input="x",model="other"} 9.0
# TYPE mlrm_drift_prediction_psi gauge
mlrm_drift_prediction_psi{model="pcb"} 0.12
# TYPE mlrm_drift_window_rows gauge
mlrm_drift_window_rows{model="pcb"} 250.0
# TYPE mlrm_performance_rolling gauge
mlrm_performance_rolling{metric="f1_macro",model="pcb"} 0.81
# TYPE mlrm_performance_holdout gauge
mlrm_performance_holdout{metric="f1_macro",model="pcb"} 0.9
# TYPE mlrm_performance_window_rows gauge
mlrm_performance_window_rows{model="pcb"} 60.0
"""
DRIFT_JSON = {"available": True, "thresholds": {"moderate": 0.1, "significant": 0.25},
              "window": {"seconds": 3600, "rows": 1, "min_rows": 200, "enough": False}}  # fmt: skip


def test_drift_and_performance_gauges_are_read_per_model_and_charted_as_they_are() -> None:
    scrape = parse(MONITORED, "pcb")
    assert scrape.drift == {"volume_pct": 0.31, "area_pct": 0.02} and scrape.overall == 0.31
    assert scrape.drift_predictions == 0.12 and scrape.drift_rows == 250
    assert (scrape.metric, scrape.rolling, scrape.holdout, scrape.performance_rows) == ("f1_macro", 0.81, 0.9, 60)
    p = point(scrape, scrape, 2.0)
    assert (p["psi"], p["prediction_psi"], p["rolling"], p["holdout"]) == (0.31, 0.12, 0.81, 0.9)
    history = History.empty(5)
    history.add(1.0, parse(""))
    history.add(2.0, scrape)
    assert history.series()["psi"] == [0.31] and history.series()["holdout"] == [0.9]


def test_the_card_levels_inputs_from_metrics_with_the_services_min_rows() -> None:
    drift = drift_of(parse(MONITORED, "pcb"), DRIFT_JSON)  # the JSON's rows are older: /metrics counts
    assert drift["window"] == {"seconds": 3600, "rows": 250, "min_rows": 200, "enough": True}
    assert [(i["name"], i["level"]) for i in drift["inputs"]] == [("volume_pct", "significant"), ("area_pct", "none")]
    assert drift["predictions"] == {"psi": 0.12, "level": "moderate"}
    few = parse(MONITORED.replace("250.0", "40.0"), "pcb")
    assert {i["level"] for i in drift_of(few, DRIFT_JSON)["inputs"]} == {"insufficient"}
    assert drift_of(few, {})["inputs"][0]["level"] is None  # min_rows unknown: no level made up
    performance = performance_of(parse(MONITORED, "pcb"), {"window": {"seconds": 60}})
    assert performance == {"available": True, "reason": None, "metric": "f1_macro", "rolling": 0.81,
                           "holdout": 0.9, "rows": 60, "seconds": 60}  # fmt: skip


def test_without_figures_the_card_says_why() -> None:
    reason = "version 1 has no reference profile; retrain to record one"
    assert drift_of(parse(""), {"available": False, "reason": reason}) == {"available": False, "reason": reason}
    assert not performance_of(parse(""), {"available": False, "reason": "no feedback"})["available"]
    assert performance_of(parse(""), {})["reason"] == "no live performance in /metrics"
