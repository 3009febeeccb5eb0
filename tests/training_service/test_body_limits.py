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
