"""What tests/test_fuzz.py found answered 500 by the training service, each now a 4xx problem."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.toolkit.training import NAME


def test_a_job_id_beyond_sqlite_integers_is_a_404(ts_client: FlaskClient) -> None:
    """GET /v1/jobs/9223372036854775808 was a 500: OverflowError binding it to SQLite."""
    for job_id in (2**63, 10**40):
        answer = ts_client.get(f"/v1/jobs/{job_id}")
        assert answer.status_code == 404, answer.get_data()
        assert answer.content_type == "application/problem+json"
        assert answer.get_json()["detail"] == f"no job {job_id}"
    assert ts_client.get(f"/v1/jobs/{2**63 - 1}").status_code == 404  # the largest id is looked up as any other


def test_a_sample_id_or_batch_past_sqlite_integers_is_a_422_not_a_500(ts_client: FlaskClient) -> None:
    too_big = str(2**64)
    for query in (f"after={too_big}", f"batch={too_big}", f"ids={too_big}", f"ids=1-{too_big}"):
        answer = ts_client.get(f"/v1/services/{NAME}/samples?{query}")
        assert answer.status_code == 422, (query, answer.json)
