"""Fixtures for the training service in-process (settings, Flask app, test
client) over the `root` config root, and `store_url`: an empty store on each
backend (SQLite, PostgreSQL); `root`, `cancer_rows` and the real
`training_service` are in tests/conftest.py, shared with tests elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.toolkit.postgres import fresh_schema
from training_service.api import create_app
from training_service.settings import Settings


@pytest.fixture
def store_choice() -> str:
    """The store of `settings`: "" is the default SQLite file; a module returns `store_url` to run on both backends."""
    return ""


@pytest.fixture
def settings(root: Path, store_choice: str) -> Settings:
    return Settings(
        config_root=root, store_url=store_choice, max_records=500, max_body_bytes=1024 * 1024, poll_interval=0.1
    )


@pytest.fixture
def ts_app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def ts_client(ts_app: Flask) -> FlaskClient:
    return ts_app.test_client()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty store on each backend: a SQLite file, or a fresh PostgreSQL schema (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'training.sqlite'}"
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL naming a fresh PostgreSQL schema (dropped after); skipped without PostgreSQL."""
    with fresh_schema() as url:
        yield url
