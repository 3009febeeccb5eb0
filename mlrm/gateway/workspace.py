"""Working copies: a gateway that runs its config sets from copies under its data_dir.

With `working_copies: true` in a manifest, `mlrm up` runs every config set
from `<data_dir>/configs/<set>/`: new versions (from the training service,
`mlrm rollback`) are written there, and the sets it was pointed at (the ones
shipped in a repository, say) stay exactly as they were. At every start and
reload the copy takes the original's files again, except `learned/`, which
is copied once and from then on belongs to the gateway: it is state.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from mlrm.config.loader import SERVICE_FILE
from mlrm.gateway.manifest import Manifest
from mlrm.storage.versions import write_atomic

LEARNED = "learned"
SCHEMAS = ".mlrm"


def copies_root(manifest: Manifest) -> Path:
    """Where the working copies of a manifest's config sets live."""
    return manifest.data_dir / "configs"


def _sync(source: Path, dest: Path) -> None:
    """Make dest a working copy of the config set at source (see the module docstring)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = dest / item.name
        if item.name == LEARNED:
            if item.is_dir() and not target.exists():
                shutil.copytree(item, target)
        elif item.is_file():
            data = item.read_bytes()
            if not target.is_file() or target.read_bytes() != data:
                write_atomic(target, data)  # a running service never reads half a service.yaml


def prepare(manifest: Manifest) -> Manifest:
    """The manifest as `mlrm up` runs it: with working_copies, the copies made and pointed at."""
    if not manifest.working_copies:
        return manifest
    root = copies_root(manifest)
    training = manifest.training
    moved: dict[Path, Path] = {}
    if training.config_root is not None:
        for folder in sorted(p for p in training.config_root.iterdir() if (p / SERVICE_FILE).is_file()):
            moved[folder] = root / folder.name
    for spec in manifest.enabled():
        moved.setdefault(spec.config_set, root / spec.config_set.name)
    for source, dest in moved.items():
        if (source / SERVICE_FILE).is_file():
            _sync(source, dest)
        schemas = source.parent / SCHEMAS  # where the sets' first line points editors (`mlrm schema --write`)
        if schemas.is_dir():
            _sync(schemas, dest.parent / SCHEMAS)
    services = tuple(
        dataclasses.replace(s, config_set=moved.get(s.config_set, s.config_set)) for s in manifest.services
    )
    config_root = root if training.config_root is not None else None
    return dataclasses.replace(
        manifest, services=services, training=dataclasses.replace(training, config_root=config_root)
    )
