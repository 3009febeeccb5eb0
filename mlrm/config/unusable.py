"""A config set a process was asked to use but cannot load, and why: one shape for `mlrm serve`
(mlrm/core/service_set.py) and the training service (training_service/services.py).

Neither takes the process down: the set is kept with its problems and the fix, its routes answer
503 with both, and it is loaded again once its service.yaml changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrm.config.loader import SERVICE_FILE
from mlrm.errors import ConfigProblem, RequestError

# How the config checks name a missing optional extra (mlrm/config/loader.py).
_EXTRA = re.compile(r"pip install 'mlrm\[(\w+)\]'")


@dataclass(frozen=True)
class UnusableSet:
    """A config set that does not load: its name, folder and problems; `owner` names the process
    that cannot use it (what to restart once a missing extra is installed)."""

    name: str
    path: Path
    problems: tuple[ConfigProblem, ...]
    owner: str = "mlrm serve"

    @property
    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems)

    @property
    def fix(self) -> str:
        extra = next((m.group(1) for p in self.problems if (m := _EXTRA.search(p.message))), None)
        if extra is not None:
            return (
                f"install the extra: pip install 'mlrm[{extra}]' (in a checkout: scripts/setup {extra}), "
                f"then restart {self.owner}"
            )
        return f"fix {self.path / SERVICE_FILE} (`mlrm validate {self.path}` shows every problem); it is loaded again once it changes"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "available": False, "reason": self.reason, "fix": self.fix}

    def error(self) -> RequestError:
        """The 503 problem every route of this set answers."""
        return RequestError(
            "Service unavailable", 503, kind="service-unavailable",
            detail=f"config set '{self.name}' ({self.path}) cannot be used by {self.owner}: {self.reason}. Fix: {self.fix}.",
        )  # fmt: skip
