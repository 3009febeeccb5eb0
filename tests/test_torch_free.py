"""torch is an optional extra: mlrm without a torch config set never imports it,
and a torch config set on a machine without torch says what to install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlrm.config import load_config_set
from mlrm.errors import ConfigError
from tests.toolkit.files import CONFIGS, ROOT, copy_config_set
from tests.toolkit.processes import env

SCRIPT = """
import json, sys
import mlrm
from mlrm import cli
from mlrm.config import load_config_set
from mlrm.rest import create_app
assert cli.main(["validate", sys.argv[1]]) == 0
assert cli.main(["schema", "-o", sys.argv[2]]) == 0
client = create_app(load_config_set(sys.argv[1])).test_client()
answer = client.post("/v1/predict", json={"instances": [json.loads(sys.argv[3])]})
assert answer.status_code == 200, answer.json
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "torch")))
"""


def test_serving_a_scikit_learn_set_never_imports_torch(tmp_path: Path, pcb_instance: dict[str, object]) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(tmp_path / "schema.json"), json.dumps(pcb_instance)],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_a_torch_set_without_torch_fails_validate_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what find_spec sees when torch is not installed
    with pytest.raises(ConfigError) as caught:
        load_config_set(CONFIGS / "worker-activity")
    assert "algorithm.name: 'cnn1d_classifier' needs the optional extra 'torch'" in str(caught.value)
    assert "pip install 'mlrm[torch]'" in str(caught.value)


def test_checking_a_torch_set_does_not_import_torch() -> None:
    """The training service and mlrm validate check every set; torch costs ~200 MB, so only a job loads it."""
    script = (
        "import sys; from mlrm.config import load_config_set; load_config_set(sys.argv[1]); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(CONFIGS / "worker-activity")],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
