"""Reviewing stored samples: list, quarantine, release, delete (audited), retention, and jobs
that skip the rows they cannot use; in-process over the real app and a real store, on
each backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mlrm.storage import audit
from tests.toolkit.files import configure
from tests.toolkit.training import NAME, inline
from training_service.core import TrainingService
from training_service.scheduler import Scheduler
from training_service.store import Sample

BASE = f"/v1/services/{NAME}/samples"


@pytest.fixture
def store_choice(store_url: str) -> str:
    """Every test here on both backends (SQLite, PostgreSQL)."""
    return store_url


def core_of(app: Flask) -> TrainingService:
    service: TrainingService = app.extensions["training_service"]
    return service


def post(client: FlaskClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    answer = client.post(BASE, json={"records": rows})
    assert answer.status_code == 202, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def train(app: Flask) -> dict[str, Any]:
    core = core_of(app)
    job, _ = core.train(NAME)
    inline(core.store.url, core.store.job(job["id"]))  # type: ignore[arg-type]
    return core.job(job["id"])


def test_ingest_refuses_a_number_past_float32(ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]) -> None:
    answer = ts_client.post(BASE, json={"records": [{**cancer_rows[0], "mean_radius": 1.7e308}]})
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    error = answer.get_json()["errors"][0]
    assert error["pointer"] == "/records/0/mean_radius"
    assert ts_client.get(f"{BASE}/stats").get_json()["total"] == 0


def test_poisoned_rows_are_skipped_reported_quarantined_and_deleted(
    ts_app: Flask, ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]
) -> None:
    good = post(ts_client, cancer_rows[:200])
    # Stored as an older release did, before the row checks refused them at the door.
    poison = [Sample({**row, "mean_radius": 1.7e308}, str(row["diagnosis"])) for row in cancer_rows[200:203]]
    store = core_of(ts_app).store
    answer, _ = store.add_batch(NAME, poison, None, "legacy", lambda ids, batch: {"ids": ids, "batch": batch})
    job = train(ts_app)
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["rejected_ids"] == answer["ids"] and job["result"]["rows"] == 200

    held = ts_client.post(f"{BASE}/quarantine", json={"batch": answer["batch"]}).get_json()
    assert (held["count"], held["first_id"], held["last_id"]) == (3, answer["ids"][0], answer["ids"][-1])
    listed = ts_client.get(f"{BASE}?state=quarantined").get_json()
    assert [s["id"] for s in listed["samples"]] == answer["ids"] and listed["next_after"] is None
    assert ts_client.get(f"{BASE}/stats").get_json()["quarantined"] == 3
    assert train(ts_app)["result"]["rejected"] == 0  # quarantined rows are never read

    released = ts_client.post(f"{BASE}/release", json={"ids": f"{answer['ids'][0]}-{answer['ids'][-1]}"})
    assert released.get_json()["count"] == 3
    gone = ts_client.post(f"{BASE}/delete", json={"batch": answer["batch"]}).get_json()
    assert gone["count"] == 3
    assert ts_client.get(f"{BASE}/stats").get_json()["total"] == good["accepted"]
    seen = [
        (e["who"], e["what"], e["status"], e["answer"]["count"])
        for e in audit.entries(core_of(ts_app).services.get(NAME).learned_dir)
        if "samples/" in e["what"]
    ]  # noqa: E501
    assert seen == [
        ("anonymous", f"POST {BASE}/quarantine", 200, 3),
        ("anonymous", f"POST {BASE}/release", 200, 3),
        ("anonymous", f"POST {BASE}/delete", 200, 3),
    ]


def test_listing_pages_and_filters(ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]) -> None:
    first = post(ts_client, cancer_rows[:30])
    post(ts_client, cancer_rows[30:60])
    page = ts_client.get(f"{BASE}?batch={first['batch']}&limit=20").get_json()
    assert len(page["samples"]) == 20 and page["next_after"] == page["samples"][-1]["id"]
    rest = ts_client.get(f"{BASE}?batch={first['batch']}&after={page['next_after']}").get_json()
    assert len(rest["samples"]) == 10 and rest["next_after"] is None
    assert rest["samples"][0]["record"] == cancer_rows[20]
    benign = ts_client.get(f"{BASE}?label=benign&limit=1000").get_json()["samples"]
    assert benign and {s["label"] for s in benign} == {"benign"}
    assert ts_client.get(f"{BASE}?until=2000-01-01T00:00:00Z").get_json()["samples"] == []


@pytest.mark.parametrize(
    ("path", "body", "pointer", "words"),
    [
        ("delete", {}, "", "never read as 'all'"),
        ("delete", {"ids": "20-10"}, "/ids", "first <= the last"),
        ("quarantine", {"since": "yesterday"}, "/since", "ISO 8601"),
        ("quarantine", {"batch": 0}, "/batch", "batch number >= 1"),
        ("release", {"colour": "red"}, "/colour", "unknown key"),
    ],
)
def test_a_bad_selector_is_refused_naming_the_key(
    ts_client: FlaskClient, cancer_rows: list[dict[str, Any]], path: str, body: Any, pointer: str, words: str
) -> None:
    post(ts_client, cancer_rows[:5])
    answer = ts_client.post(f"{BASE}/{path}", json=body)
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    error = answer.get_json()["errors"][0]
    assert error["pointer"] == pointer and words in error["detail"]
    assert ts_client.get(f"{BASE}/stats").get_json()["total"] == 5


def test_retention_keeps_the_newest_and_is_audited(ts_app: Flask, cancer_rows: list[dict[str, Any]]) -> None:
    core = core_of(ts_app)
    configure(core.services.get(NAME).path, training={"retention": {"max_count": 50}})
    client = ts_app.test_client()
    last = post(client, cancer_rows[:120])["last_id"]
    Scheduler(core.settings, core.store, core.services, launch=inline).tick()
    kept = client.get(f"{BASE}?limit=1000").get_json()["samples"]
    assert [s["id"] for s in kept] == list(range(last - 49, last + 1))
    entry = audit.entries(core.services.get(NAME).learned_dir)[-1]
    assert entry["who"] == "scheduler" and "training.retention" in entry["what"]
    assert entry["answer"]["count"] == 70
