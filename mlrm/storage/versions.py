"""Versioned learned state inside a config set, written atomically.

Layout (all machine-written; service.yaml is never touched):

    learned/
      current.yaml            version: 3, parameters_sha256: ...
      versions/0003/
        parameters.yaml       metadata, metrics, resolved config, artifact digests
        model.json, model.npz (whatever the adapter dumped)
        signature.yaml        Ed25519 signature of parameters.yaml's sha256, when signed

A version is written into a temporary folder, every file fsynced, then renamed
into place and the folder fsynced; current.yaml is replaced the same way. A
crash at any point leaves the previous current version intact.

Digests: current.yaml records the sha256 of the current version's
parameters.yaml, and parameters.yaml the sha256 of every artifact. Files are
read into memory, hashed, and handed over only when the digest matches, so a
file changed by a bad disk, a torn copy or a slip of an editor is never
loaded. They catch corruption, not tampering: whoever can write the folder can
rewrite a file and its digest alike. Signatures (mlrm.storage.signatures) catch
tampering: with MLRM_SIGNING_KEY set every version written is signed, and with
MLRM_VERIFY_KEY set a version is read only if its signature verifies.
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
from mlrm.storage import signatures

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


@dataclass(frozen=True)
class Pointer:
    """What current.yaml says: the version that serves, and its parameters.yaml digest."""

    version: int
    parameters_sha256: str | None


@dataclass
class VersionRecord:
    """One stored version: its parameters.yaml and its verified artifact bytes."""

    version: int
    parameters: dict[str, Any]
    files: dict[str, bytes]
    parameters_sha256: str


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

    def pointer(self) -> Pointer | None:
        """current.yaml, or None if nothing was trained yet."""
        try:
            data = yaml.safe_load(self.current_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (yaml.YAMLError, ValueError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("version"), int):
            raise StateError(
                f"{self.current_file()} is corrupt: expected 'version: N'. Make a version current again: {self._fix()}"
            )
        digest = data.get("parameters_sha256")
        return Pointer(int(data["version"]), digest if isinstance(digest, str) else None)

    def current(self) -> int | None:
        """The current version number, or None if nothing was trained yet."""
        pointer = self.pointer()
        return pointer.version if pointer else None

    def read_current(self) -> VersionRecord | None:
        """The current version, its parameters.yaml checked against current.yaml's digest."""
        pointer = self.pointer()
        return None if pointer is None else self.read(pointer.version, parameters_sha256=pointer.parameters_sha256)

    def _fix(self) -> str:
        versions = ", ".join(map(str, self.versions())) or "none"
        return f"mlrm rollback {self.root.parent} --to N (versions here: {versions}), or retrain"

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
        return self._parameters(version, None)[0]

    def _parameters(self, version: int, parameters_sha256: str | None) -> tuple[dict[str, Any], str]:
        """parameters.yaml and its sha256, checked against parameters_sha256 if given."""
        file = self.path_of(version) / PARAMETERS
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise StateError(f"version {version} does not exist (no {file})") from None
        # Hashed and parsed from the same bytes, so what was checked is what is used.
        digest = sha256(raw)
        if parameters_sha256 is not None and digest != parameters_sha256:
            raise StateError(
                f"{file}: sha256 is {digest}, but {self.current_file()} recorded {parameters_sha256} when "
                f"version {version} was made current; the file has changed since (a bad disk, a torn copy, an "
                f"edit by hand), so it is not loaded. Fix: {self._fix()}"
            )
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, ValueError) as exc:
            raise StateError(f"{file} is corrupt ({type(exc).__name__}). Fix: {self._fix()}") from None
        if not isinstance(data, dict):
            raise StateError(f"{file} is corrupt: expected a mapping. Fix: {self._fix()}")
        return data, digest

    def read(self, version: int, *, parameters_sha256: str | None = None) -> VersionRecord:
        """A version with every artifact read and its sha256 verified (and parameters.yaml's, if given)."""
        parameters, own_digest = self._parameters(version, parameters_sha256)
        folder = self.path_of(version)
        verifier = signatures.verifier_from_env()
        if verifier is not None:
            # Before any artifact is read: an unsigned version's files are never even opened.
            verifier.check(folder, own_digest, _read_optional(folder / signatures.SIGNATURE))
        files: dict[str, bytes] = {}
        for name, digest in (parameters.get("artifacts") or {}).items():
            if "/" in name or name.startswith("."):
                raise StateError(f"{folder / PARAMETERS}: bad artifact name {name!r}")
            try:
                data = (folder / name).read_bytes()
            except FileNotFoundError:
                raise StateError(f"{folder / name} is missing. Fix: {self._fix()}") from None
            if sha256(data) != digest:
                raise StateError(
                    f"{folder / name}: sha256 does not match the digest recorded in {PARAMETERS}; "
                    f"the file has changed since it was written, so it is not loaded. Fix: {self._fix()}"
                )
            files[name] = data
        return VersionRecord(version, parameters, files, own_digest)

    def write(self, parameters: dict[str, Any], files: dict[str, bytes], *, make_current: bool = True) -> int:
        """Store a new version atomically; returns its number."""
        with self.lock():
            self._sweep()
            version = max(self.versions(), default=0) + 1
            tmp, digest = self._stage(version, parameters, files)
            os.rename(tmp, self.path_of(version))
            _fsync_dir(self.versions_dir)
            if make_current:
                self._set_current(version, digest)
            return version

    def _stage(self, version: int, parameters: dict[str, Any], files: dict[str, bytes]) -> tuple[Path, str]:
        """A complete version folder under a temporary name, fsynced (signed when a key is set); its
        parameters.yaml digest."""
        signer = signatures.signer_from_env()  # a bad key fails here, before anything is written
        tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        record = dump_yaml({"version": version, **parameters, "artifacts": {n: sha256(d) for n, d in files.items()}})
        digest = sha256(record)
        out = {**files, PARAMETERS: record}
        if signer is not None:
            out[signatures.SIGNATURE] = signer.signature_file(digest)
        for name, data in out.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        return tmp, digest

    def rewrite(self, version: int, files: dict[str, bytes]) -> str:
        """Replace the artifacts of an existing version (`mlrm migrate`): same number and metadata, new files
        and digests, signed anew when a key is set; current.yaml follows if it points here. Returns the new
        parameters.yaml digest. A crash midway leaves the old folder or the new one, never a mix."""
        with self.lock():
            self._sweep()
            pointer = self.pointer()
            pinned = pointer.parameters_sha256 if pointer and pointer.version == version else None
            old = self.read(version, parameters_sha256=pinned)
            parameters = {k: v for k, v in old.parameters.items() if k not in ("version", "artifacts")}
            tmp, digest = self._stage(version, parameters, files)
            path = self.path_of(version)
            aside = self.versions_dir / f".old-{version:04d}-{uuid.uuid4().hex}"
            os.rename(path, aside)
            os.rename(tmp, path)
            _fsync_dir(self.versions_dir)
            if pointer and pointer.version == version:
                self._set_current(version, digest)
            shutil.rmtree(aside)
            return digest

    def install(self, version: int, files: dict[str, bytes], parameters_sha256: str) -> bool:
        """Store a version made elsewhere (a gateway following its training service) byte for byte, and
        make it current; whether it was new here.

        Everything is checked before a byte is written: parameters.yaml against parameters_sha256, every
        artifact it lists against its digest, nothing unlisted, the signature when MLRM_VERIFY_KEY is set.
        Then the same protocol as write(): a fsynced temporary folder renamed into place, current.yaml
        replaced. A version of that number already here must be the same version (same parameters.yaml
        digest): then it is only made current again (a rollback at the centre)."""
        with self.lock():
            self._sweep()
            if version in self.versions():  # files are not needed, and may be left out
                _, digest = self._parameters(version, None)
                if digest != parameters_sha256:
                    raise StateError(
                        f"{self.path_of(version)} holds another version {version} (parameters.yaml sha256 {digest}, "
                        f"not {parameters_sha256}): this config set was trained here too. Fix: a config set that "
                        f"follows a training service is trained only there; move {self.root} aside and let it "
                        "download every version again"
                    )
                self._set_current(version, self.read(version, parameters_sha256=digest).parameters_sha256)
                return False
            self._check_received(version, files, parameters_sha256)
            tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir()
            for name, data in files.items():
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            os.rename(tmp, self.path_of(version))
            _fsync_dir(self.versions_dir)
            self._set_current(version, parameters_sha256)
            return True

    def _check_received(self, version: int, files: dict[str, bytes], digest: str) -> None:
        """StateError unless a received version's parameters.yaml, every artifact and the signature check out."""
        origin = f"version {version} as received for {self.root}"
        raw = files.get(PARAMETERS)
        if raw is None:
            raise StateError(f"{origin}: no {PARAMETERS}")
        if sha256(raw) != digest:
            raise StateError(f"{origin}: {PARAMETERS} has sha256 {sha256(raw)}, not {digest} as announced")
        try:
            parameters = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, ValueError) as exc:
            raise StateError(f"{origin}: {PARAMETERS} is not YAML ({type(exc).__name__})") from None
        if not isinstance(parameters, dict) or parameters.get("version") != version:
            raise StateError(f"{origin}: {PARAMETERS} does not say 'version: {version}'")
        artifacts = parameters.get("artifacts") or {}
        expected = {PARAMETERS, *artifacts} | ({signatures.SIGNATURE} & set(files))
        if set(files) != expected:
            odd = sorted(set(files) ^ expected)
            raise StateError(f"{origin}: files {odd} are missing or not listed in {PARAMETERS}'s artifacts")
        for name, wanted in artifacts.items():
            if not isinstance(name, str) or "/" in name or name.startswith(".") or name == PARAMETERS:
                raise StateError(f"{origin}: {PARAMETERS}: bad artifact name {name!r}")
            if sha256(files[name]) != wanted:
                raise StateError(
                    f"{origin}: {name} has sha256 {sha256(files[name])}, not {wanted} as {PARAMETERS} says"
                )
        verifier = signatures.verifier_from_env()
        if verifier is not None:
            # Named as the folder it would go to: that is what the key refuses to have loaded.
            verifier.check(self.path_of(version), digest, files.get(signatures.SIGNATURE))

    def set_current(self, version: int) -> None:
        """Make an existing version current (rollback), atomically."""
        with self.lock():
            # It must exist and verify; the digest pinned is that of the bytes just verified.
            self._set_current(version, self.read(version).parameters_sha256)

    def _set_current(self, version: int, digest: str) -> None:
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
        # A rewrite that crashed between its two renames: put the old folder back.
        for p in self.versions_dir.glob(".old-*"):
            home = self.versions_dir / p.name.split("-")[1]
            if home.exists():
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.rename(p, home)


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
