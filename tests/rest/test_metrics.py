"""GET /metrics of a real `mlrm serve` (2 gunicorn workers): the exact
Content-Type strict scrapers accept, and version swaps, rollbacks and failed
loads counted and logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlrm.config import load_config_set
from mlrm.core.model import Model
from mlrm.storage.versions import CURRENT, VersionStore
from mlrm.training.trainer import save
from tests.toolkit.files import configure
from tests.toolkit.waiting import wait_until

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def samples(url: str) -> dict[str, float]:
    """Every sample of /metrics by name and labels: {'name{a="x"}': value}."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def new_version(folder: Path) -> int:
    """The current model saved again as a new current version (what a training run writes)."""
    config = load_config_set(folder)
    store = VersionStore(config.learned_dir)
    record = store.read_current()
    assert record is not None
    model = Model.from_record(config, record)
    return save(config, model, {"f1_macro": 0.9}, data={"rows": 0}, timings={})


def swapped(url: str, instance: dict[str, Any], version: int) -> bool:
    """Predict until an answer comes from version (each worker swaps on its own next request)."""
    r = requests.post(f"{url}/v1/predict", json={"instances": [instance]}, timeout=10)
    return bool(r.json()["model"]["version"] == version)


@pytest.mark.slow
def test_metrics_has_one_charset_and_counts_reloads_and_failed_reloads(
    serve: Any, config_set: Path, pcb_instance: dict[str, Any]
) -> None:
    configure(config_set, serving={"reload_interval": 0.1})
    url, process = serve(config_set, "--workers", "2")
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.headers["Content-Type"] == CONTENT_TYPE
    before = samples(url)
    assert before['mlrm_model_reloads_total{model="pcb-inspection"}'] == 0
    assert before['mlrm_model_reload_failures_total{model="pcb-inspection"}'] == 0

    version = new_version(config_set)
    wait_until(lambda: swapped(url, pcb_instance, version), 30, f"version {version} answering")
    assert samples(url)['mlrm_model_reloads_total{model="pcb-inspection"}'] >= 1
    VersionStore(config_set / "learned").set_current(version - 1)
    # Predicting on until the line is there: a worker that served version 2 rolls back on its next request.
    said = f"rolled back to version {version - 1} (was {version}) in pid"
    wait_until(lambda: swapped(url, pcb_instance, version - 1) and said in process.output(), 30, "the rollback")

    (config_set / "learned" / CURRENT).write_text("version: 999\n")  # a current version that does not exist
    failures = 'mlrm_model_reload_failures_total{model="pcb-inspection"}'
    wait_until(lambda: swapped(url, pcb_instance, version - 1) and samples(url)[failures] >= 1, 30, "a failure")
    assert "could not load the current version" in process.output()
