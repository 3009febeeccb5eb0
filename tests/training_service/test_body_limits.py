"""A post's size is bounded however its body arrives, and only what training
uses reaches the store (issue 13: a chunked CSV was cut at --max-body-bytes
and stored, 98 for 987654; ignored 130 KB columns filled the disk).

Through the real `mlrm training-service` (gunicorn) on a socket, with its
real SQLite file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import requests

from tests.toolkit import raw_http
from tests.toolkit.training import NAME

SAMPLES = f"/v1/services/{NAME}/samples"
LIMIT = 64 * 1024


def csv_of(rows: list[dict[str, Any]], extra: dict[str, str] | None = None) -> bytes:
    names = [*rows[0], *(extra or {})]
    lines = [",".join(names)] + [",".join(str(v) for v in {**r, **(extra or {})}.values()) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def stored(root: Path) -> int:
    with sqlite3.connect(root / "training.sqlite") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])


def test_a_chunked_post_over_the_limit_is_a_413_and_nothing_is_stored(
    training_service: Any, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    url, process = training_service(root, "--max-body-bytes", str(LIMIT))
    body = csv_of(cancer_rows * 2)
    assert len(body) > 2 * LIMIT
    for size in (8192, 1000, LIMIT + 7):  # the cut inside a chunk, at its edge, and past it in one chunk
        reply = raw_http.post(url, SAMPLES, "text/csv", raw_http.chunked(body, size))
        assert reply.status == 413, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert f"the limit is {LIMIT} bytes (training-service --max-body-bytes)" in reply.json()["detail"]
    assert stored(root) == 0
    # The same bytes with a Content-Length: the same answer.
    assert requests.post(url + SAMPLES, data=body, headers={"Content-Type": "text/csv"}, timeout=30).status_code == 413
    assert stored(root) == 0
    assert "unhandled error" not in process.output()


def test_a_chunked_post_at_the_limit_is_stored_whole(
    training_service: Any, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    url, _ = training_service(root, "--max-body-bytes", str(LIMIT))
    body = csv_of(cancer_rows)
    while len(body) > LIMIT:
        body = body[: body.rindex(b"\n", 0, len(body) - 1) + 1]
    rows = body.count(b"\n") - 1
    reply = raw_http.post(url, SAMPLES, "text/csv", raw_http.chunked(body, 777))
    assert reply.status == 202, reply.body
    assert reply.json()["accepted"] == rows
    assert stored(root) == rows


def test_a_chunked_body_that_ends_early_is_a_400_and_nothing_is_stored(
    training_service: Any, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    url, _ = training_service(root)
    body = csv_of(cancer_rows[:20])
    reply = raw_http.post(url, SAMPLES, "text/csv", raw_http.chunked(body)[:-5] + b"zz\r\n\r\n")
    assert reply.status == 400, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    assert stored(root) == 0


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("training.sqlite*"))  # the WAL too


def test_only_declared_columns_reach_the_store(
    training_service: Any, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    """The attack: one-row posts with 120 ignored columns of 130 KB each (15.6 MB a post)."""
    url, _ = training_service(root)
    junk = {f"junk_{i}": "x" * 130_000 for i in range(120)}
    for row in cancer_rows[:2]:
        body = csv_of([row], junk)
        answer = requests.post(url + SAMPLES, data=body, headers={"Content-Type": "text/csv"}, timeout=60)
        assert answer.status_code == 202, answer.text[:500]
        assert answer.json()["accepted"] == 1
    with sqlite3.connect(root / "training.sqlite") as conn:
        records = [orjson.loads(r[0]) for r in conn.execute("SELECT record FROM samples")]
    assert [set(r) for r in records] == [set(cancer_rows[0])] * 2
    assert store_bytes(root) < 1024 * 1024


def test_a_value_over_1_kib_is_refused_naming_the_field(
    training_service: Any, root: Path, cancer_rows: list[dict[str, Any]]
) -> None:
    url, _ = training_service(root)
    padded = {**cancer_rows[0], "mean_radius": " " * 2000 + "14.25"}  # parses as a number: it was stored whole
    answer = requests.post(url + SAMPLES, data=csv_of([padded]), headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {
            "pointer": "/records/0/mean_radius",
            "line": 2,
            "detail": "2005 characters; the limit is 1024 for a name or a value. Send the value without padding; "
            "no label, category, stream id or time is that long",
        }
    ]
    label = {**cancer_rows[1], "diagnosis": "benign" + " " * 100_000}  # the label is matched stripped
    key = {**cancer_rows[2], "k" * 100_000: 1}
    answer = requests.post(url + SAMPLES, json={"records": [label, key, cancer_rows[3]]}, timeout=30)
    assert answer.status_code == 202, answer.text
    rows = answer.json()["rows"]
    assert [r["status"] for r in rows] == ["rejected", "rejected", "accepted"]
    assert rows[0]["errors"][0]["pointer"] == "/records/0/diagnosis"
    assert rows[1]["errors"][0]["pointer"] == "/records/1/" + "k" * 64 + "..."
    assert len(answer.content) < 4096  # neither value is echoed
    assert stored(root) == 1
