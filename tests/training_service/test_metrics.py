"""The training service's gauges read from the store at scrape time: a store
that does not answer leaves them out and says so, and the counters still
come (the whole /metrics over live processes: tests/test_monitoring.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.toolkit.processes import free_port
from training_service.metrics import TrainingMetrics
from training_service.services import ConfigRoot
from training_service.store_url import open_store


def families(text: bytes) -> dict[str, dict[str, float]]:
    """{family: {labels as text: value}} of an exposition."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(family.name, {})[",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))] = s.value
    return out


def test_a_store_that_does_not_answer_leaves_its_gauges_out_and_keeps_the_counters(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # this process's registry alone
    metrics = TrainingMetrics()
    metrics.ingested("breast-cancer", 3, 1, 0.01)
    gone = open_store(f"postgresql://mlrm@127.0.0.1:{free_port()}/none")  # nothing listens there
    seen = families(metrics.render(gone, ConfigRoot(root), lambda config: 0))
    assert seen["mlrm_training_store_up"] == {"": 0.0}
    assert "mlrm_training_jobs" not in seen and "mlrm_training_samples_pending" not in seen
    assert seen["mlrm_training_samples"]["outcome=accepted,service=breast-cancer"] == 3


def test_the_gauges_say_what_the_store_holds(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    store = open_store(f"sqlite:///{root / 'training.sqlite'}")
    store.migrate()
    store.create_job("breast-cancer", str(root / "breast-cancer"), "on_demand")
    seen = families(TrainingMetrics().render(store, ConfigRoot(root), lambda config: 0))
    assert seen["mlrm_training_store_up"] == {"": 1.0}
    assert seen["mlrm_training_jobs"] == {"service=breast-cancer,state=queued": 1.0,
                                          "service=breast-cancer,state=running": 0.0}  # fmt: skip
    assert seen["mlrm_training_samples_pending"] == {"service=breast-cancer": 0.0}
    store.close()
