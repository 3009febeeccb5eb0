"""Versioned learned state inside a config set, written atomically.

Layout (all machine-written; service.yaml is never touched):

    learned/
      current.yaml            version: 3, parameters_sha256: ...
      versions/0003/
        parameters.yaml       metadata, metrics, resolved config, artifact digests
        model.joblib          (whatever the adapter dumped)

A version is written into a temporary folder, every file fsynced, then renamed
into place and the folder fsynced; current.yaml is replaced the same way. A
crash at any point leaves the previous current version intact. Artifacts are
read into memory, hashed, and handed over only when the digest matches the one
recorded, so a tampered pickle is never loaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlrm.errors import StateError

CURRENT = "current.yaml"
PARAMETERS = "parameters.yaml"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace path with data: temp file, fsync, rename, directory fsync."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def dump_yaml(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")


@dataclass
class VersionRecord:
    """One stored version: its parameters.yaml and its verified artifact bytes."""

    version: int
    parameters: dict[str, Any]
    files: dict[str, bytes]


class VersionStore:
    """The learned/ folder of one config set."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for writers (CLI, training service) across processes."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def current_file(self) -> Path:
        return self.root / CURRENT

    def current(self) -> int | None:
        """The current version number, or None if nothing was trained yet."""
        try:
            data = yaml.safe_load(self.current_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("version"), int):
            raise StateError(f"{self.current_file()} is corrupt: expected 'version: N'")
        return int(data["version"])

    def stamp(self) -> tuple[int, int, int] | None:
        """Cheap change detector for current.yaml (inode, size, mtime)."""
        try:
            st = os.stat(self.current_file())
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit())

    def path_of(self, version: int) -> Path:
        return self.versions_dir / f"{version:04d}"

    def parameters(self, version: int) -> dict[str, Any]:
        """parameters.yaml of a version (no artifacts read)."""
        file = self.path_of(version) / PARAMETERS
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StateError(f"version {version} does not exist (no {file})") from None
        if not isinstance(data, dict):
            raise StateError(f"{file} is corrupt")
        return data

    def read(self, version: int) -> VersionRecord:
        """A version with every artifact read and its sha256 verified."""
        parameters = self.parameters(version)
        folder = self.path_of(version)
        files: dict[str, bytes] = {}
        for name, digest in (parameters.get("artifacts") or {}).items():
            if "/" in name or name.startswith("."):
                raise StateError(f"{folder / PARAMETERS}: bad artifact name {name!r}")
            data = (folder / name).read_bytes()
            if sha256(data) != digest:
                raise StateError(
                    f"{folder / name}: sha256 does not match the digest recorded in {PARAMETERS}; "
                    "refusing to load it (it may have been tampered with). Retrain or roll back."
                )
            files[name] = data
        return VersionRecord(version, parameters, files)

    def write(self, parameters: dict[str, Any], files: dict[str, bytes], *, make_current: bool = True) -> int:
        """Store a new version atomically; returns its number."""
        with self.lock():
            self._sweep()
            version = max(self.versions(), default=0) + 1
            tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir()
            record = {"version": version, **parameters, "artifacts": {n: sha256(d) for n, d in files.items()}}
            for name, data in {**files, PARAMETERS: dump_yaml(record)}.items():
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            os.rename(tmp, self.path_of(version))
            _fsync_dir(self.versions_dir)
            if make_current:
                self._set_current(version)
            return version

    def set_current(self, version: int) -> None:
        """Make an existing version current (rollback), atomically."""
        with self.lock():
            self.read(version)  # it must exist and verify
            self._set_current(version)

    def _set_current(self, version: int) -> None:
        digest = sha256((self.path_of(version) / PARAMETERS).read_bytes())
        write_atomic(self.current_file(), dump_yaml({"version": version, "parameters_sha256": digest}))

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest `keep` versions (never the current one)."""
        with self.lock():
            current = self.current()
            doomed = [v for v in self.versions()[:-keep] if v != current] if keep > 0 else []
            for v in doomed:
                shutil.rmtree(self.path_of(v))
            return doomed

    def _sweep(self) -> None:
        """Remove temporary folders left by a crashed writer."""
        for p in self.versions_dir.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
