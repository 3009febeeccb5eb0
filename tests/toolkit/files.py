"""Files tests start from: private copies of the shipped config sets, merged
service.yaml sections, gateway manifests rooted at this checkout."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIGS = ROOT / "configs"


def copy_config_set(name: str, dest: Path, *, learned: bool = True) -> Path:
    """A private copy of a shipped config set (with or without its learned state)."""
    target = dest / name
    ignore = None if learned else shutil.ignore_patterns("learned")
    shutil.copytree(CONFIGS / name, target, ignore=ignore)
    return target


def configure(folder: Path, **sections: dict[str, Any]) -> None:
    """Merge sections into a config set's service.yaml (e.g. training={"triggers": {...}})."""
    file = folder / "service.yaml"
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    for key, value in sections.items():
        current = raw.get(key) or {}
        for sub, v in value.items():
            if isinstance(v, dict) and isinstance(current.get(sub), dict):
                current[sub] = {**current[sub], **v}
            else:
                current[sub] = v
        raw[key] = current
    file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def write_manifest(tmp_path: Path, text: str) -> Path:
    """A gateway manifest in tmp_path/services/ whose root is this checkout and whose data stays in tmp_path."""
    path = tmp_path / "services" / "gw.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"root: {ROOT}\ndata_dir: {tmp_path / 'var'}\n" + textwrap.dedent(text))
    return path
