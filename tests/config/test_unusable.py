from pathlib import Path

from mlrm.config.unusable import UnusableSet
from mlrm.errors import ConfigProblem

MISSING_TORCH = (
    "configs/worker-activity/service.yaml:30: algorithm.name: 'cnn1d_classifier' needs the optional extra "
    "'torch', which is not installed. Install it with: pip install 'mlrm[torch]'"
)


def test_a_missing_extra_names_the_install_command_and_what_to_restart() -> None:
    problems = (ConfigProblem("x", "algorithm.name", MISSING_TORCH),)
    item = UnusableSet("worker-activity", Path("configs/worker-activity"), problems, owner="the training service")
    assert "pip install 'mlrm[torch]'" in item.fix and "scripts/setup torch" in item.fix
    assert item.fix.endswith("then restart the training service")
    error = item.error()
    assert error.status == 503 and "cannot be used by the training service" in str(error.detail)


def test_a_broken_set_says_where_to_look_and_that_it_loads_again() -> None:
    problems = (ConfigProblem("configs/a/service.yaml", "algoritm", "unknown key 'algoritm'"),)
    item = UnusableSet("a", Path("configs/a"), problems)
    assert "mlrm validate configs/a" in item.fix and "loaded again once it changes" in item.fix
    assert item.as_dict() == {"name": "a", "path": "configs/a", "available": False, "reason": item.reason,
                              "fix": item.fix}  # fmt: skip
