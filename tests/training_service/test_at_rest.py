"""What the training service holds at rest: config sets checked fully, scikit-learn never imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.toolkit.files import ROOT, configure, copy_config_set
from tests.toolkit.processes import env

SCRIPT = """
import sys
from pathlib import Path
from training_service.services import ConfigRoot
root = ConfigRoot(Path(sys.argv[1]))
print(root.names())
print(root.unavailable["pcb-inspection"].reason)
print(sorted(m for m in ("sklearn", "scipy", "skops") if m in sys.modules))
"""


def test_hyperparameters_are_checked_in_a_child_and_scikit_learn_stays_out(tmp_path: Path) -> None:
    copy_config_set("breast-cancer", tmp_path)
    bad = copy_config_set("pcb-inspection", tmp_path)
    configure(bad, algorithm={"name": "random_forest_classifier", "hyperparameters": {"n_estimators": -3}})
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env(),
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    names, reason, imported = done.stdout.splitlines()[-3:]
    assert names == "['breast-cancer']"
    assert "algorithm.hyperparameters.n_estimators" in reason and "n_estimators" in reason
    assert imported == "[]"
