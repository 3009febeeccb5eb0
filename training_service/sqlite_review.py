"""Reviewing stored samples in the SQLite store: list, quarantine, release, delete,
retention, and the store's own health (quick_check). Split from sqlite_store.py
to keep each module about one thing; SQLiteStore calls these on its connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from training_service.selector import Selector
from training_service.store import StoreFull, iso

# Added after the first release: migrate() adds it to stores made before.
QUARANTINE_COLUMN = "ALTER TABLE samples ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0"


def add_columns(conn: sqlite3.Connection) -> None:
    """Bring an older store up to date (inside migrate()'s transaction)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(samples)")}
    if "quarantined" not in columns:
        conn.execute(QUARANTINE_COLUMN)


def where(service: str, selector: Selector) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the samples a selector names."""
    sql, params = ["service = ?"], [service]
    conditions: list[tuple[str, Any]] = [
        ("id >= ?", selector.first_id), ("id <= ?", selector.last_id), ("batch = ?", selector.batch),
        ("received_at >= ?", selector.since), ("received_at < ?", selector.until), ("label = ?", selector.label),
    ]  # fmt: skip
    for clause, value in conditions:
        if value is not None:
            sql.append(clause)
            params.append(value)
    return " AND ".join(sql), params


def listing(
    conn: sqlite3.Connection, service: str, selector: Selector, quarantined: bool | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """One page of selected samples, by id, after the id `after`."""
    clause, params = where(service, selector)
    if quarantined is not None:
        clause += " AND quarantined = ?"
        params.append(int(quarantined))
    rows = conn.execute(
        f"SELECT id, batch, received_at, label, value, quarantined, record FROM samples WHERE {clause} AND id > ? "
        "ORDER BY id LIMIT ?",
        (*params, after, limit),
    ).fetchall()
    return [
        {"id": r[0], "batch": r[1], "received_at": iso(r[2]), "label": r[3], "value": r[4],
         "quarantined": bool(r[5]), "record": orjson.loads(r[6])}
        for r in rows
    ]  # fmt: skip


def change(conn: sqlite3.Connection, service: str, selector: Selector, action: str) -> dict[str, Any]:
    """Quarantine, release or delete the selected samples (inside a write transaction)."""
    clause, params = where(service, selector)
    first, last, count = conn.execute(
        f"SELECT MIN(id), MAX(id), COUNT(*) FROM samples WHERE {clause}", params
    ).fetchone()
    if action == "delete":
        conn.execute(f"DELETE FROM samples WHERE {clause}", params)
    else:
        conn.execute(f"UPDATE samples SET quarantined = ? WHERE {clause}", (int(action == "quarantine"), *params))
    return {"count": int(count), "first_id": first, "last_id": last}


def retain(conn: sqlite3.Connection, service: str, max_age: float | None, max_count: int | None) -> dict[str, Any]:
    """Delete the oldest samples past training.retention (inside a write transaction); what went."""
    horizon = 0
    if max_count is not None:
        row = conn.execute(
            "SELECT id FROM samples WHERE service = ? ORDER BY id DESC LIMIT 1 OFFSET ?", (service, max_count)
        ).fetchone()
        horizon = int(row[0]) if row else 0
    if max_age is not None:
        row = conn.execute(
            "SELECT MAX(id) FROM samples WHERE service = ? AND received_at < ?", (service, time.time() - max_age)
        ).fetchone()
        horizon = max(horizon, int(row[0] or 0))
    if not horizon:
        return {"count": 0, "first_id": None, "last_id": None}
    first, count = conn.execute(
        "SELECT MIN(id), COUNT(*) FROM samples WHERE service = ? AND id <= ?", (service, horizon)
    ).fetchone()
    conn.execute("DELETE FROM samples WHERE service = ? AND id <= ?", (service, horizon))
    return {"count": int(count), "first_id": first, "last_id": horizon}


def quick_check(conn: sqlite3.Connection) -> str | None:
    """What SQLite's quick_check finds wrong with the file, or None if it is sound."""
    try:
        found = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if found == ["ok"] else "; ".join(found)


def check(conn: sqlite3.Connection, marker: Path) -> str | None:
    """quick_check, remembered in a marker file so every process's health sees a damaged store."""
    problem = quick_check(conn)
    if problem is None:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text(problem, encoding="utf-8")
    return problem


def damage(conn: Callable[[], sqlite3.Connection], marker: Path) -> str | None:
    """Why the store is unusable now, or None."""
    try:
        return marker.read_text(encoding="utf-8") or "damaged"
    except FileNotFoundError:
        pass
    try:  # cheap (the end of one b-tree), unlike quick_check: proves the file still answers
        conn().execute("SELECT MAX(id) FROM samples").fetchone()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None


@contextmanager
def refusing_full(path: Path) -> Iterator[None]:
    """Turn SQLite's 'database or disk is full' into StoreFull (the transaction is rolled back)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
            raise StoreFull(f"the disk holding {path} is full; nothing of this post was stored") from None
        raise
