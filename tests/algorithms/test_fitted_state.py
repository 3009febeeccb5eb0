"""mlrm's own format for scikit-learn state: what a crafted file cannot make loading do."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from mlrm import algorithms
from mlrm.algorithms import fitted_state
from mlrm.errors import StateError
from tests.toolkit.files import CONFIGS, ROOT
from tests.toolkit.processes import env


def saved(name: str, **params: Any) -> dict[str, bytes]:
    adapter = algorithms.get(name)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(np.int64) if adapter.task == "classification" else X[:, 1]
    return adapter(**params).fit(X, None if adapter.task == "anomaly" else y, n_classes=2, seed=1).dump()


def edited(files: dict[str, bytes], change: Any) -> dict[str, bytes]:
    doc = json.loads(files[fitted_state.STATE])
    change(doc)
    return {**files, fitted_state.STATE: json.dumps(doc).encode()}


def load(name: str, files: dict[str, bytes]) -> None:
    algorithms.get(name)().load(files)


def test_a_class_the_entry_does_not_list_is_refused_and_never_imported() -> None:
    files = saved("random_forest_classifier", n_estimators=2)

    def plant(doc: dict[str, Any]) -> None:
        doc["estimator"]["estimators_"][0] = {"@": "estimator", "class": "Popen", "state": {}}

    with pytest.raises(StateError, match="not written by mlrm"):
        load("random_forest_classifier", edited(files, plant))
    assert "subprocess" not in json.dumps(json.loads(edited(files, plant)[fitted_state.STATE]))


@pytest.mark.parametrize("key", ["predict", "__class__", "__dict__", "not an identifier"])
def test_an_attribute_that_would_shadow_the_class_is_refused(key: str) -> None:
    files = saved("logistic_regression")

    def plant(doc: dict[str, Any]) -> None:
        doc["estimator"][key] = 1

    with pytest.raises(StateError, match="not an attribute mlrm sets"):
        load("logistic_regression", edited(files, plant))


def test_an_object_array_is_refused() -> None:
    files = saved("logistic_regression")
    arrays = dict(np.load(io.BytesIO(files[fitted_state.ARRAYS])))
    key = json.loads(files[fitted_state.STATE])["estimator"]["coef_"]["key"]
    arrays[key] = np.array([print], dtype=object)
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    with pytest.raises(StateError, match="does not load"):
        load("logistic_regression", {**files, fitted_state.ARRAYS: out.getvalue()})


def test_a_tree_whose_children_leave_its_table_is_refused() -> None:
    files = saved("decision_tree_classifier", max_depth=2)
    doc = json.loads(files[fitted_state.STATE])
    key = doc["estimator"]["tree_"]["state"]["items"]
    nodes_key = next(v["key"] for k, v in key if k == "nodes")
    arrays = dict(np.load(io.BytesIO(files[fitted_state.ARRAYS])))
    arrays[nodes_key]["left_child"][0] = 10_000
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    with pytest.raises(StateError, match="outside its node table"):
        load("decision_tree_classifier", {**files, fitted_state.ARRAYS: out.getvalue()})


def test_a_file_for_another_entry_is_refused() -> None:
    with pytest.raises(StateError, match="not ridge"):
        load("ridge", saved("linear_regression"))


def test_serving_a_shipped_set_never_imports_skops() -> None:
    """skops lists every scikit-learn estimator on import (~16 MB a process): only an older version needs it."""
    script = (
        "import sys; from mlrm.config import load_config_set; from mlrm.core.service import Service\n"
        "service = Service(load_config_set(sys.argv[1]))\n"
        "assert service.model is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'skops'))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(CONFIGS / "pcb-inspection")], capture_output=True,
                          text=True, env=env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
