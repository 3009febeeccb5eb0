"""The store a URL names (--store): the one place that knows every backend."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from mlrm.errors import StoreError
from training_service.sqlite_store import SQLiteStore
from training_service.store import Store, redact


def open_store(url: str) -> Store:
    """The store a URL names: sqlite:///relative/path, sqlite:////absolute/path, a plain file path,
    or postgresql://user@host:port/database[?schema=NAME] (psycopg, imported only here)."""
    if "://" not in url:
        return SQLiteStore(url)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise StoreError(f"{url}: no file named; use sqlite:///path/to/training.sqlite")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise StoreError(f"{url}: unknown option {sorted(unknown)[0]!r}; only 'synchronous' is accepted")
        return SQLiteStore(path, synchronous=options.get("synchronous", "FULL"))
    if parts.scheme in ("postgres", "postgresql"):
        return _postgres(url)
    raise StoreError(
        f"{redact(url)}: unknown store scheme {parts.scheme!r}; use sqlite:///path/to/training.sqlite "
        "or postgresql://user@host:5432/database"
    )


def _postgres(url: str) -> Store:
    try:
        from training_service.postgres_store import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"{redact(url)}: a PostgreSQL store needs psycopg 3, which is not installed ({exc}). "
            "Fix: pip install 'mlrm[postgresql]'"
        ) from None
    return PostgresStore(url)
