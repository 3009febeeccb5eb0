"""Fixtures for the training service in-process (settings, Flask app, test
client) over the `root` config root; `root`, `cancer_rows` and the real
`training_service` are in tests/conftest.py, shared with tests elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from training_service.api import create_app
from training_service.settings import Settings


@pytest.fixture
def settings(root: Path) -> Settings:
    return Settings(config_root=root, max_records=500, max_body_bytes=1024 * 1024, poll_interval=0.1)


@pytest.fixture
def ts_app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def ts_client(ts_app: Flask) -> FlaskClient:
    return ts_app.test_client()
