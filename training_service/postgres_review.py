"""Reviewing stored samples in the PostgreSQL store: stats, list, quarantine, release,
delete and retention. Split from postgres_store.py as sqlite_review.py is from the
SQLite store; PostgresStore calls these on one of its connections (changes inside
its write transaction, under the service's samples lock)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from psycopg import Connection

from training_service import sqlite_review
from training_service.selector import Selector
from training_service.store import iso


def where(service: str, selector: Selector) -> tuple[str, list[Any]]:
    """The WHERE clause of the samples a selector names: the SQLite store's (same columns), %s placeholders."""
    clause, params = sqlite_review.where(service, selector)
    return clause.replace("?", "%s"), params


def stats(conn: Connection[Any], service: str, after_id: int) -> dict[str, Any]:
    """Counts, label balance, target and time range of a service's samples, all from one snapshot."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute(
            "SELECT COUNT(*), MIN(received_at), MAX(received_at), MIN(value), MAX(value), AVG(value), "
            "COUNT(*) FILTER (WHERE id > %s), MAX(id), COUNT(*) FILTER (WHERE quarantined = 1) "
            "FROM samples WHERE service = %s",
            (after_id, service),
        )
        total, first, last, low, high, mean, new, last_id, held = cur.fetchone() or (0,) * 9
        cur.execute(
            "SELECT label, COUNT(*) FROM samples WHERE service = %s AND label IS NOT NULL GROUP BY label ORDER BY label",
            (service,),
        )
        labels = {str(k): int(v) for k, v in cur.fetchall()}
        cur.execute("SELECT COUNT(*) FROM batches WHERE service = %s", (service,))
        batches = (cur.fetchone() or (0,))[0]
    return {
        "total": int(total),
        "new": int(new),
        "batches": int(batches),
        "quarantined": int(held),
        "last_id": int(last_id or 0),
        "labels": labels,
        "target": None if low is None else {"min": low, "max": high, "mean": mean},
        "first_received_at": iso(first),
        "last_received_at": iso(last),
    }


def listing(
    conn: Connection[Any], service: str, selector: Selector, quarantined: bool | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """One page of selected samples, by id, after the id `after`."""
    clause, params = where(service, selector)
    if quarantined is not None:
        clause += " AND quarantined = %s"
        params.append(int(quarantined))
    rows = conn.execute(
        f"SELECT id, batch, received_at, label, value, quarantined, record FROM samples WHERE {clause} "  # type: ignore[arg-type]
        "AND id > %s ORDER BY id LIMIT %s",
        (*params, after, limit),
    ).fetchall()
    return [
        {"id": r[0], "batch": r[1], "received_at": iso(r[2]), "label": r[3], "value": r[4],
         "quarantined": bool(r[5]), "record": orjson.loads(r[6])}
        for r in rows
    ]  # fmt: skip


def change(conn: Connection[Any], service: str, selector: Selector, action: str) -> dict[str, Any]:
    """Quarantine, release or delete the selected samples (inside a write transaction)."""
    clause, params = where(service, selector)
    row = conn.execute(f"SELECT MIN(id), MAX(id), COUNT(*) FROM samples WHERE {clause}", params).fetchone()  # type: ignore[arg-type]
    first, last, count = row or (None, None, 0)
    if action == "delete":
        conn.execute(f"DELETE FROM samples WHERE {clause}", params)  # type: ignore[arg-type]
    else:
        conn.execute(
            f"UPDATE samples SET quarantined = %s WHERE {clause}",  # type: ignore[arg-type]
            (int(action == "quarantine"), *params),
        )
    return {"count": int(count), "first_id": first, "last_id": last}


def retain(conn: Connection[Any], service: str, max_age: float | None, max_count: int | None) -> dict[str, Any]:
    """Delete the oldest samples past training.retention (inside a write transaction); what went."""
    horizon = 0
    if max_count is not None:
        row = conn.execute(
            "SELECT id FROM samples WHERE service = %s ORDER BY id DESC LIMIT 1 OFFSET %s", (service, max_count)
        ).fetchone()
        horizon = int(row[0]) if row else 0
    if max_age is not None:
        row = conn.execute(
            "SELECT MAX(id) FROM samples WHERE service = %s AND received_at < %s", (service, time.time() - max_age)
        ).fetchone()
        horizon = max(horizon, int(row[0] or 0) if row else 0)
    if not horizon:
        return {"count": 0, "first_id": None, "last_id": None}
    row = conn.execute(
        "SELECT MIN(id), COUNT(*) FROM samples WHERE service = %s AND id <= %s", (service, horizon)
    ).fetchone()
    first, count = row or (None, 0)
    conn.execute("DELETE FROM samples WHERE service = %s AND id <= %s", (service, horizon))
    return {"count": int(count), "first_id": first, "last_id": horizon}
