"""`layout`: run a test once with its config set alone in `mlrm serve`, once grouped with another set."""

from __future__ import annotations

import pytest

from tests.toolkit.layouts import LAYOUTS, Layout


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest) -> Layout:
    return Layout(request.param)
