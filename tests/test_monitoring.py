"""What an operator's tools read from a live ML service and a live training
service (real gunicorn, after some traffic): /metrics with the exact
Content-Type strict scrapers accept, every metric the Grafana dashboard
(docs/grafana/mlrm.json) queries, the training service's counts; and
/openapi.json documents that openapi-spec-validator passes, with an
operationId on every operation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from mlrm import logs
from tests.toolkit.files import ROOT, copy_config_set
from tests.toolkit.processes import Process, free_port, mlrm_args
from tests.toolkit.training import NAME, weak_version
from tests.toolkit.waiting import wait_until

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DASHBOARD = ROOT / "docs" / "grafana" / "mlrm.json"


def metric_samples(url: str) -> dict[str, float]:
    """Every sample of url/metrics: {'name{a="x",b="y"}': value} (labels sorted)."""
    out = {}
    for family in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's PromQL expressions use."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    return {name for e in exprs for name in re.findall(r"\bmlrm_[a-z0-9_]+\b", e)}


class Live(NamedTuple):
    """The two services and their logs (the training service's in JSON: --log-format json)."""

    ml: str
    training: str
    ml_log: Path
    training_log: Path

    @property
    def urls(self) -> tuple[str, str]:
        return self.ml, self.training


def start(args: list[str], log: Path, health: str, started: list[Process]) -> str:
    """Start a service with 2 workers (stopped with the others in started) and wait until health answers."""
    port = free_port()
    started.append(Process(mlrm_args(*args, "--port", str(port), "--workers", "2"), log))
    url = f"http://127.0.0.1:{port}"
    started[-1].wait_http(url + health)
    return url


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, cancer_rows: list[dict[str, Any]]) -> Iterator[Live]:
    """Both services, after traffic: predictions, bad requests, ingest, one training job."""
    tmp = tmp_path_factory.mktemp("monitoring")
    root = tmp / "root"
    weak_version(copy_config_set(NAME, root), cancer_rows)
    ml_set = copy_config_set(NAME, tmp)
    started: list[Process] = []
    try:
        ml = start(["serve", str(ml_set)], tmp / "serve.log", "/v2/health/ready", started)
        args = ["training-service", "--config-root", str(root), "--poll-interval", "0.1", "--log-format", "json"]
        training = start(args, tmp / "ts.log", "/v1/health", started)
        instance = {k: v for k, v in cancer_rows[0].items() if k != "diagnosis"}
        for _ in range(3):
            assert requests.post(f"{ml}/v1/predict", json={"instances": [instance]}, timeout=10).status_code == 200
        assert requests.post(f"{ml}/v1/predict", json={"instances": [{}]}, timeout=10).status_code == 422
        samples = f"{training}/v1/services/{NAME}/samples"
        records = [*cancer_rows[:300], {**cancer_rows[0], "diagnosis": "maybe"}]
        assert requests.post(samples, json={"records": records}, timeout=30).status_code == 202
        job = requests.post(f"{training}/v1/services/{NAME}/train", timeout=10).json()["job"]
        wait_until(
            lambda: requests.get(f"{training}/v1/jobs/{job['id']}", timeout=10).json()["state"] == "succeeded",
            120, "the training job succeeded",
        )  # fmt: skip
        yield Live(ml, training, tmp / "serve.log", tmp / "ts.log")
    finally:
        for process in started:
            process.stop()


@pytest.mark.slow
def test_metrics_answer_the_exact_content_type_strict_scrapers_accept(services: Live) -> None:
    for url in services.urls:
        assert requests.get(f"{url}/metrics", timeout=10).headers["Content-Type"] == CONTENT_TYPE


@pytest.mark.slow
def test_every_metric_the_grafana_dashboard_queries_exists_on_a_live_service(services: Live) -> None:
    names = {key.partition("{")[0] for url in services.urls for key in metric_samples(url)}
    missing = sorted(dashboard_metrics() - names)
    assert missing == [], f"{DASHBOARD.name} queries metrics no live service has: {missing}"


@pytest.mark.slow
def test_the_training_service_counts_ingest_jobs_and_gate_decisions(services: Live) -> None:
    seen = metric_samples(services.training)
    assert seen[f'mlrm_training_samples_total{{outcome="accepted",service="{NAME}"}}'] == 300
    assert seen[f'mlrm_training_samples_total{{outcome="rejected",service="{NAME}"}}'] == 1
    assert seen[f'mlrm_training_ingest_duration_seconds_count{{service="{NAME}"}}'] == 1
    # The job ran in a process the scheduler forked: its counts reach /metrics all the same.
    assert seen[f'mlrm_training_jobs_finished_total{{service="{NAME}",state="succeeded"}}'] == 1
    assert seen[f'mlrm_training_job_duration_seconds_count{{service="{NAME}",state="succeeded"}}'] == 1
    decisions = [v for k, v in seen.items() if k.startswith("mlrm_training_gate_decisions_total{")]
    assert sum(decisions) == 1
    assert seen[f'mlrm_training_jobs{{service="{NAME}",state="running"}}'] == 0
    assert seen[f'mlrm_training_jobs{{service="{NAME}",state="queued"}}'] == 0
    assert seen[f'mlrm_training_samples_pending{{service="{NAME}"}}'] == 0  # the job read all 300
    key = 'mlrm_training_requests_total{endpoint="/v1/services/<name>/samples",method="POST",status="202"}'
    assert seen[key] == 1


@pytest.mark.slow
def test_both_openapi_documents_pass_the_validator_with_an_operation_id_everywhere(services: Live) -> None:
    for url in services.urls:
        document = requests.get(f"{url}/openapi.json", timeout=10).json()
        validate(document)
        ids = [op.get("operationId") for item in document["paths"].values() for op in item.values()]
        assert None not in ids, f"{url}: an operation without operationId"
        assert len(set(ids)) == len(ids), f"{url}: operationIds repeat"


@pytest.mark.slow
def test_both_services_log_every_line_in_the_one_format_text_or_json(services: Live) -> None:
    text = services.ml_log.read_text().splitlines()
    assert text and all(logs.formatted(line) for line in text), [x for x in text if not logs.formatted(x)][:3]
    assert any(" INFO breast-cancer.serve: 'breast-cancer' ready at " in line for line in text)
    objects = [json.loads(line) for line in services.training_log.read_text().splitlines()]  # JSON, every line
    assert objects and all({"ts", "level", "component", "message", "pid"} <= set(o) for o in objects)
    components = {o["component"] for o in objects}
    assert {"training-service", "training-service.gunicorn", "training-service.scheduler"} <= components
    promoted = [o for o in objects if o["component"] == "training-service.jobs"]
    assert promoted and "version 2 current" in promoted[-1]["message"]  # said where it is made current
