"""Fixtures for MQTT tests: a real Mosquitto (`broker`, `make_broker`) and
collectors, all stopped at teardown. The helpers are in tests/toolkit/brokers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.toolkit.brokers import Broker, Collector, need_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running anonymous Mosquitto on a free 127.0.0.1 port."""
    need_mosquitto()
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Make (not start) brokers with options; all are stopped at teardown."""
    need_mosquitto()
    made: list[Broker] = []

    def make(**options: Any) -> Broker:
        b = Broker(tmp_path / f"broker-{len(made)}", **options)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def collect() -> Iterator[Callable[..., Collector]]:
    """Start collectors (see Collector); all are closed at teardown."""
    made: list[Collector] = []

    def start(port: int, topics: list[str], **kwargs: Any) -> Collector:
        c = Collector(port, topics, **kwargs)
        made.append(c)
        return c

    yield start
    for c in made:
        c.close()
