"""Tests share code only through tests/toolkit/: a test module importing another
test module or a conftest registers that module's fixtures twice and ties
unrelated tests together."""

from __future__ import annotations

import ast

import pytest

from tests.toolkit.files import ROOT

TOOLKIT = "tests.toolkit"


def imported(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute name) of everything that source, as the module named, imports."""
    package = module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*parts, *([node.module] if node.module else [])])
            # `from tests import conftest` names the module in the alias, not in `module`.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def forbidden(name: str) -> bool:
    inside = name == "tests" or name.startswith("tests.")
    return inside and not (name == TOOLKIT or name.startswith(TOOLKIT + "."))


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    offences = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, name in imported(path.read_text(encoding="utf-8"), module):
            if forbidden(name):
                offences.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert not offences, "share helpers through tests/toolkit/ instead:\n" + "\n".join(offences)


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("from tests.conftest import copy_config_set", True),
        ("from tests.mqtt.conftest import Broker", True),
        ("import tests.gateway.test_up", True),
        ("from tests import conftest", True),
        ("from .conftest import publish", True),
        ("from ..training_service import conftest", True),
        ("from tests.toolkit.processes import Process", False),
        ("from tests.toolkit import waiting", False),
        ("from ..toolkit.files import ROOT", False),
        ("import testsuite", False),
    ],
)
def test_the_rule_sees_every_spelling_of_an_import(line: str, refused: bool) -> None:
    names = [name for _, name in imported(line, "tests.mqtt.test_example")]
    assert any(forbidden(name) for name in names) == refused, names
