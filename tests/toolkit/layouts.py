"""The two ways an ML service runs: a config set alone in its process (`mlrm serve SET`), or
grouped with others in one process (`mlrm serve SET OTHER`), where its /v1 routes are at
/v1/models/NAME/. Tests parametrised over LAYOUTS run the same checks in both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.toolkit.files import copy_config_set

LAYOUTS = ("alone", "grouped")


@dataclass(frozen=True)
class Layout:
    name: str  # one of LAYOUTS

    def sets(self, folder: Path, tmp_path: Path) -> list[Path]:
        """What `mlrm serve` is given to serve folder in this layout (grouped: beside a trained neighbour)."""
        if self.name == "alone":
            return [folder]
        neighbour = "air-quality" if folder.name != "air-quality" else "breast-cancer"
        return [folder, copy_config_set(neighbour, tmp_path / "neighbours")]

    def v1(self, url: str, model: str) -> str:
        """Where model's /v1 routes are (predict, config, admin/reload, mqtt, feedback)."""
        return f"{url}/v1" if self.name == "alone" else f"{url}/v1/models/{model}"

    @property
    def predict_rule(self) -> str:
        """The endpoint label of its predict route in /metrics."""
        return "/v1/predict" if self.name == "alone" else "/v1/models/<name>/predict"
