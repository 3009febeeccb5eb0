"""Versions handed out to the gateways that follow this training service.

A gateway whose training is remote asks `GET /v1/services/NAME/current`
often (hundreds of gateways, every few seconds), so that answer is cheap: an
ETag made of the current version and its parameters.yaml digest, cached per
worker by current.yaml's stamp (inode, size, mtime). A request whose
If-None-Match holds it costs one stat() and gets 304 with no body. Long
polling would hold a sync gunicorn worker per waiting gateway; a 304 frees
it at once.

A new version is fetched as a bundle: a JSON manifest listing
parameters.yaml, every artifact it names and signature.yaml (if signed),
each with its sha256 and size, then one file at a time. Only those names
are served, so no path can leave the version's folder. The gateway checks
every digest (and the signature) before it writes anything
(mlrm.storage.versions.VersionStore.install).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlrm.errors import NotFoundError, RequestError
from mlrm.storage.signatures import SIGNATURE
from mlrm.storage.versions import PARAMETERS, VersionStore, sha256


@dataclass(frozen=True)
class Current:
    """Which version serves, as a gateway compares it with its own."""

    version: int
    parameters_sha256: str

    @property
    def etag(self) -> str:
        """The entity tag (unquoted): changes exactly when the current version or its bytes do."""
        return f"{self.version}-{self.parameters_sha256}"


def _safe(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and not name.startswith(".") and "\0" not in name


class Handout:
    """Current versions and bundles of the config sets' learned/ folders (one per worker process)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int, int], Current]] = {}

    def current(self, name: str, learned_dir: Path) -> Current:
        """The current version (404 naming the fix when nothing was trained yet)."""
        store = VersionStore(learned_dir)
        # Taken before current.yaml is read: what is cached is never older than the stamp it is cached under.
        stamp = store.stamp()
        cached = self._seen.get(learned_dir)
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        pointer = store.pointer() if stamp is not None else None
        if pointer is None:
            raise RequestError(
                "No current version", 404, kind="no-current-version",
                detail=f"'{name}' has no current version yet ({store.current_file()} does not exist). "
                f"Post samples and train it: POST /v1/services/{name}/train",
            )  # fmt: skip
        digest = pointer.parameters_sha256
        if digest is None:  # a current.yaml written before digests were recorded
            digest = sha256(self._read(name, store, pointer.version, PARAMETERS))
        found = Current(pointer.version, digest)
        if stamp is not None:
            self._seen[learned_dir] = (stamp, found)
        return found

    def bundle(self, name: str, learned_dir: Path, version: int) -> dict[str, Any]:
        """What makes up one version: every file with its sha256, size and where to fetch it."""
        store = VersionStore(learned_dir)
        raw = self._read(name, store, version, PARAMETERS)
        files = [{"name": PARAMETERS, "sha256": sha256(raw), "size": len(raw)}]
        for file, digest in self._artifacts(name, store, version, raw).items():
            files.append({"name": file, "sha256": digest, "size": self._size(name, store, version, file)})
        signed = (store.path_of(version) / SIGNATURE).is_file()
        if signed:
            signature = self._read(name, store, version, SIGNATURE)
            files.append({"name": SIGNATURE, "sha256": sha256(signature), "size": len(signature)})
        base = f"/v1/services/{name}/versions/{version}/files/"
        return {
            "service": name, "version": version, "parameters_sha256": files[0]["sha256"], "signed": signed,
            "files": [{**f, "href": base + str(f["name"])} for f in files],
        }  # fmt: skip

    def file(self, name: str, learned_dir: Path, version: int, file: str) -> bytes:
        """One file of a version: parameters.yaml, signature.yaml, or an artifact parameters.yaml lists."""
        store = VersionStore(learned_dir)
        raw = self._read(name, store, version, PARAMETERS)
        if file == PARAMETERS:
            return raw
        if file != SIGNATURE and file not in self._artifacts(name, store, version, raw):
            raise NotFoundError(
                f"version {version} of '{name}' has no file {file!r}; its files are listed by "
                f"GET /v1/services/{name}/versions/{version}/bundle"
            )
        return self._read(name, store, version, file)

    @staticmethod
    def _read(name: str, store: VersionStore, version: int, file: str) -> bytes:
        try:
            return (store.path_of(version) / file).read_bytes()
        except FileNotFoundError:
            if file == PARAMETERS:
                raise NotFoundError(f"'{name}' has no version {version}; stored: {store.versions()}") from None
            raise NotFoundError(f"version {version} of '{name}' has no file {file!r}") from None

    @staticmethod
    def _size(name: str, store: VersionStore, version: int, file: str) -> int:
        try:
            return os.stat(store.path_of(version) / file).st_size
        except FileNotFoundError:
            raise RequestError(
                "Version unusable", 409, kind="version-unusable",
                detail=f"version {version} of '{name}' lists {file} in {PARAMETERS}, but the file is missing "
                f"from {store.path_of(version)}; it cannot be handed out. Make another version current",
            ) from None  # fmt: skip

    @staticmethod
    def _artifacts(name: str, store: VersionStore, version: int, raw: bytes) -> dict[str, str]:
        try:
            parameters = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, ValueError):
            parameters = None
        artifacts = parameters.get("artifacts") if isinstance(parameters, dict) else None
        if not isinstance(artifacts, dict) or not all(_safe(k) and isinstance(v, str) for k, v in artifacts.items()):
            raise RequestError(
                "Version unusable", 409, kind="version-unusable",
                detail=f"{store.path_of(version) / PARAMETERS} of '{name}' is corrupt (no readable artifacts "
                "list); it cannot be handed out. Make another version current",
            )  # fmt: skip
        return {str(k): str(v) for k, v in artifacts.items()}
