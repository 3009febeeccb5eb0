"""The store a URL names (--store): the one place that knows every backend."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from mlrm.errors import StoreError
from training_service.sqlite_store import SQLiteStore
from training_service.store import Store


def open_store(url: str) -> Store:
    """The store a URL names: sqlite:///relative/path, sqlite:////absolute/path, or a plain file path."""
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
        raise StoreError(
            f"{parts.scheme}:// stores are not available yet: implement training_service.store.Store for PostgreSQL. "
            "Use the embedded default, sqlite:///path/to/training.sqlite"
        )
    raise StoreError(f"{url}: unknown store scheme {parts.scheme!r}; use sqlite:///path/to/training.sqlite")
