"""Both services' OpenAPI documents, fuzzed with schemathesis against real
gunicorn processes: no request it makes, valid or not, is answered 5xx
beyond a status the document declares (503 of a probe, say), and every
route of each ROUTES table is an operation it reaches (issue 13).

Bounded: EXAMPLES cases per operation and mode, each request with a timeout;
seeded (derandomize), so a failure reproduces and CI does not flake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from mlrm.rest.app import ROUTES as ML_ROUTES
from tests.toolkit.files import configure, copy_config_set
from tests.toolkit.processes import free_port
from training_service.api import ROUTES as TRAINING_ROUTES

EXAMPLES = 25
# A fuzzed request that hangs fails here instead of holding the suite.
TIMEOUT = 10


def fuzz(url: str) -> tuple[set[str], list[str]]:
    """(the paths of every operation fuzzed, what was answered 5xx undeclared)."""
    document = requests.get(f"{url}/openapi.json", timeout=TIMEOUT).json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    reached: set[str] = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the document describes badly fails here
        operation = result.ok()
        declared = set(operation.definition.raw.get("responses", {}))
        examples(url, operation.as_strategy(generation_mode=GenerationMode.POSITIVE), declared, failures)
        try:
            examples(url, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), declared, failures)
        except Unsatisfiable:
            pass  # an operation without parameters or body has no invalid request to make
        reached.add(operation.path)
    return reached, failures


def examples(url: str, cases: Any, declared: set[str], failures: list[str]) -> None:
    """EXAMPLES cases from one strategy, each sent; a 5xx the operation does not declare is a failure."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),  # a filtered or slow strategy is fine: the bound is the count
    )
    @given(case=cases)
    def call(case: Any) -> None:
        response = case.call(base_url=url, timeout=TIMEOUT)
        if response.status_code >= 500 and str(response.status_code) not in declared:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

    call()


def paths_of(routes: list[tuple[str, list[str], str, str | None]]) -> set[str]:
    return {rule.replace("<int:", "<").replace("<", "{").replace(">", "}") for rule, *_ in routes}


@pytest.mark.slow
def test_the_ml_service_answers_no_fuzzed_request_with_a_5xx(serve: Any, config_set: Path) -> None:
    configure(config_set, feedback={"training_service": f"http://127.0.0.1:{free_port()}"})
    url, process = serve(config_set)
    reached, failures = fuzz(url)
    assert failures == [], "\n".join(failures)
    assert reached == paths_of(ML_ROUTES)
    assert "unhandled error" not in process.output()


@pytest.mark.slow
def test_a_service_of_several_sets_answers_no_fuzzed_request_with_a_5xx(
    serve: Any, config_set: Path, tmp_path: Path
) -> None:
    """Grouped (`mlrm serve A B`): each set's routes are in the document under its own name."""
    other = copy_config_set("air-quality", tmp_path / "other")
    url, process = serve([config_set, other])
    reached, failures = fuzz(url)
    assert failures == [], "\n".join(failures)
    per_set = {p for p in paths_of(ML_ROUTES) if "{name}" in p}
    expected = {p for p in paths_of(ML_ROUTES) if "{name}" not in p and not p.startswith("/v1/") or p == "/v1/models"}
    for name in ("pcb-inspection", "air-quality"):
        expected |= {p.replace("{name}", name) for p in per_set}
    assert reached == expected
    assert "unhandled error" not in process.output()


@pytest.mark.slow
def test_the_training_service_answers_no_fuzzed_request_with_a_5xx(training_service: Any, root: Path) -> None:
    url, process = training_service(root)
    reached, failures = fuzz(url)
    assert failures == [], "\n".join(failures)
    assert reached == paths_of(TRAINING_ROUTES)
    assert "unhandled error" not in process.output()
