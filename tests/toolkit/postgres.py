"""A real PostgreSQL for tests: a fresh schema per test in the server at MLRM_TEST_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test), dropped afterwards.

Where the server or psycopg is missing the tests are skipped with the reason, unless
MLRM_REQUIRE_POSTGRES=1 (CI sets it): then they fail, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

SERVER = os.environ.get("MLRM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> NoReturn:
    """Skip (or, with MLRM_REQUIRE_POSTGRES=1, fail) a test that needs PostgreSQL."""
    if os.environ.get("MLRM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (MLRM_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"no PostgreSQL for the store tests: {reason} (set MLRM_TEST_POSTGRES=postgresql://...)")


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL naming a new, empty schema of the test server; the schema and all in it is dropped after."""
    try:
        import psycopg
    except ImportError as exc:
        unavailable(f"psycopg is not installed ({exc}); pip install 'mlrm[postgresql]'")
    schema = f"mlrm_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        unavailable(f"cannot connect to {SERVER}: {str(exc).strip()}")
    try:
        yield f"{SERVER}{'&' if '?' in SERVER else '?'}schema={schema}"
    finally:
        # Sessions of the test's store may still be ending (a killed process): drop what is there regardless.
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]  # generated name
        admin.close()
