"""The training service's HTTP API in-process: ingest, limits, idempotency,
stats, on-demand train, versions and rollback (problems are problem+json)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from mlrm.tools.datasets import to_csv
from tests.toolkit.training import NAME

SAMPLES = f"/v1/services/{NAME}/samples"


def test_json_records_are_checked_row_by_row_and_stored(
    ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]
) -> None:
    bad_value = {**cancer_rows[1], "mean_radius": "12.5"}  # a string where predict wants a number
    bad_label = {**cancer_rows[2], "diagnosis": "maybe"}
    unknown = {**cancer_rows[3], "mean_radus": 1.0}
    answer = ts_client.post(SAMPLES, json={"records": [cancer_rows[0], bad_value, bad_label, unknown, cancer_rows[4]]})
    assert answer.status_code == 202
    body = answer.get_json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert [r["status"] for r in body["rows"]] == ["accepted", "rejected", "rejected", "rejected", "accepted"]
    assert body["rows"][0]["id"] == body["first_id"] and body["rows"][4]["id"] == body["last_id"]
    assert body["rows"][1]["errors"] == [
        {"pointer": "/records/1/mean_radius", "detail": "expected a number, got string '12.5'"}
    ]
    assert body["rows"][2]["errors"][0]["pointer"] == "/records/2/diagnosis"
    assert "unknown label 'maybe'" in body["rows"][2]["errors"][0]["detail"]
    assert body["rows"][3]["errors"][0]["pointer"] == "/records/3/mean_radus"
    assert "Did you mean 'mean_radius'" in body["rows"][3]["errors"][0]["detail"]
    stats = ts_client.get(f"{SAMPLES}/stats").get_json()
    assert stats["total"] == 2 and stats["new_since_current"] == 2 and stats["current_version"] == 1
    expected = {"malignant": 0, "benign": 0}
    for r in (cancer_rows[0], cancer_rows[4]):
        expected[r["diagnosis"]] += 1
    assert stats["labels"] == expected
    assert stats["first_received_at"].endswith("Z")


def test_csv_cells_are_parsed_like_mlrm_train(ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]) -> None:
    text = to_csv(cancer_rows[:5]).splitlines()
    text[3] = text[3].replace(text[3].split(",")[0], "wide", 1)  # row 2: not a number
    text.append(text[1] + ",extra")  # row 5: more cells than the header
    answer = ts_client.post(SAMPLES, data="\n".join(text) + "\n", content_type="text/csv")
    assert answer.status_code == 202
    body = answer.get_json()
    assert (body["accepted"], body["rejected"]) == (4, 2)
    assert body["rows"][2]["errors"][0]["pointer"] == "/records/2/mean_radius"
    assert "line 7 has 32 cells; the header has 31" in body["rows"][5]["errors"][0]["detail"]


def test_nothing_usable_is_422_and_stores_nothing(ts_client: FlaskClient) -> None:
    answer = ts_client.post(SAMPLES, json={"records": [{"mean_radius": -1}]})
    assert answer.status_code == 422
    assert answer.content_type == "application/problem+json"
    problem = answer.get_json()
    assert problem["type"].endswith("/invalid-samples")
    assert problem["errors"][0]["pointer"] == "/records/0/mean_radius"
    assert ts_client.get(f"{SAMPLES}/stats").get_json()["total"] == 0


def test_retry_with_the_same_idempotency_key_counts_once(
    ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]
) -> None:
    batch = {"records": cancer_rows[:10]}
    first = ts_client.post(SAMPLES, json=batch, headers={"Idempotency-Key": "batch-1"})
    again = ts_client.post(SAMPLES, json=batch, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert ts_client.get(f"{SAMPLES}/stats").get_json()["total"] == 10
    reused = ts_client.post(SAMPLES, json={"records": cancer_rows[10:12]}, headers={"Idempotency-Key": "batch-1"})
    assert reused.status_code == 422
    assert reused.get_json()["type"].endswith("/idempotency-key-reused")


def test_limits_give_413_problems(ts_client: FlaskClient, cancer_rows: list[dict[str, Any]]) -> None:
    too_many = ts_client.post(SAMPLES, json={"records": [cancer_rows[0]] * 501})
    assert too_many.status_code == 413
    assert "the limit is 500" in too_many.get_json()["detail"]
    too_big = ts_client.post(SAMPLES, data=b"x" * (1100 * 1024), content_type="text/csv")
    assert too_big.status_code == 413
    assert too_big.content_type == "application/problem+json"
    assert "--max-body-bytes" in too_big.get_json()["detail"]


def test_bad_requests_name_what_is_wrong(ts_client: FlaskClient) -> None:
    assert ts_client.post(SAMPLES, data="x", content_type="text/plain").status_code == 415
    malformed = ts_client.post(SAMPLES, data="{", content_type="application/json")
    assert malformed.status_code == 400
    shape = ts_client.post(SAMPLES, json={"rows": []})
    assert shape.status_code == 422
    unknown = ts_client.post("/v1/services/breast-cancr/samples", json={"records": []})
    assert unknown.status_code == 404
    assert "Did you mean 'breast-cancer'" in unknown.get_json()["detail"]
    assert ts_client.get("/v1/jobs/999").status_code == 404


def test_train_on_demand_queues_one_job_at_a_time(ts_client: FlaskClient) -> None:
    first = ts_client.post(f"/v1/services/{NAME}/train")
    assert first.status_code == 202
    job = first.get_json()["job"]
    assert job["state"] == "queued" and job["trigger"] == "on_demand"
    assert first.headers["Location"] == f"/v1/jobs/{job['id']}"
    second = ts_client.post(f"/v1/services/{NAME}/train")
    assert second.status_code == 200
    assert second.get_json() == {"created": False, "job": job}
    assert ts_client.get(f"/v1/jobs/{job['id']}").get_json()["state"] == "queued"
    assert ts_client.get(f"/v1/services/{NAME}").get_json()["active_job"]["id"] == job["id"]


def test_rollback_checks_its_input(ts_client: FlaskClient) -> None:
    url = f"/v1/services/{NAME}/rollback"
    assert ts_client.post(url, json={"version": 7}).status_code == 404
    bad = ts_client.post(url, json={"version": "1"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["pointer"] == "/version"
    ok = ts_client.post(url, json={"version": 1})
    assert ok.get_json() == {"service": NAME, "version": 1, "previous": 1}
