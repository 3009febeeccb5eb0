"""Signed versions: Ed25519 signatures over a version's digests.

A digest catches a file changed by accident; anyone who can write the
learned/ folder can also rewrite the digest. A signature closes that gap: the
training side holds a private key and signs the sha256 of every version's
parameters.yaml (which lists the sha256 of every artifact, so the one
signature covers every file); a service that holds the public key refuses an
unsigned or wrongly signed version before reading any artifact.

Keys live in files named by the environment, never in service.yaml (a config
set is copied around; a private key must not travel with it):

    MLRM_SIGNING_KEY=path/signing.key   writers sign every version they store
    MLRM_VERIFY_KEY=path/verify.key     readers refuse versions it did not sign

`mlrm keys generate DIR` writes a pair.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mlrm.errors import StateError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# cryptography (11 MB) is imported only where a key is used: a service without
# MLRM_VERIFY_KEY, the usual case on a gateway, never loads it.

SIGNING_ENV = "MLRM_SIGNING_KEY"
VERIFY_ENV = "MLRM_VERIFY_KEY"
SIGNATURE = "signature.yaml"
PRIVATE_FILE, PUBLIC_FILE = "signing.key", "verify.key"
_GENERATE = "make a pair with `mlrm keys generate DIR`"


def _message(parameters_sha256: str) -> bytes:
    # A fixed prefix, so a signature made for anything else never verifies here.
    return f"mlrm signed version v1\nparameters.yaml sha256 {parameters_sha256}\n".encode()


def key_id(public: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of the sha256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """The training side's private key."""

    key: Ed25519PrivateKey
    path: str

    def signature_file(self, parameters_sha256: str) -> bytes:
        """The content of signature.yaml for a version whose parameters.yaml has this sha256."""
        signature = base64.b64encode(self.key.sign(_message(parameters_sha256))).decode("ascii")
        body = {"algorithm": "ed25519", "key": key_id(self.key.public_key()),
                "parameters_sha256": parameters_sha256, "signature": signature}  # fmt: skip
        return yaml.safe_dump(body, sort_keys=False).encode("utf-8")


@dataclass(frozen=True)
class Verifier:
    """A service's public key."""

    key: Ed25519PublicKey
    path: str

    def check(self, folder: Path, parameters_sha256: str, content: bytes | None) -> None:
        """StateError unless content is a signature.yaml this key made for parameters_sha256."""
        from cryptography.exceptions import InvalidSignature

        file = folder / SIGNATURE
        expected = key_id(self.key)
        refuse = f"so it is not loaded ({VERIFY_ENV}={self.path} is set: only versions signed with its key load)"
        fix = (f"Fix: train it again where {SIGNING_ENV} names the private key of {self.path}, or make a signed "
               f"version current (mlrm rollback {folder.parent.parent.parent} --to N)")  # fmt: skip
        if content is None:
            raise StateError(f"{file} is missing: version {folder.name} is not signed, {refuse}. {fix}")
        try:
            body = yaml.safe_load(content.decode("utf-8"))
            signature = base64.b64decode(str(body["signature"]), validate=True)
            named = str(body.get("key"))
        except (yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError, ValueError):
            raise StateError(f"{file} is not a signature mlrm can read, {refuse}. {fix}") from None
        try:
            self.key.verify(signature, _message(parameters_sha256))
        except InvalidSignature:
            whose = f"key {named}, not {expected}" if named != expected else f"key {expected}"
            raise StateError(
                f"{file}: the signature ({whose}) does not match this version's parameters.yaml (sha256 "
                f"{parameters_sha256}): the version was changed after it was signed, or signed with another "
                f"key, {refuse}. {fix}"
            ) from None


def _read_key(env: str) -> tuple[str, bytes] | None:
    path = os.environ.get(env, "").strip()
    if not path:
        return None
    try:
        return path, Path(path).read_bytes()
    except OSError as exc:
        raise StateError(
            f"{env}={path}: cannot read the key file ({exc.strerror}). Fix: point {env} at a key file "
            f"({_GENERATE}), or unset it"
        ) from None


@functools.lru_cache(maxsize=4)
def _private(path: str, data: bytes) -> Signer:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        key = None
        reason = str(exc).split("\n")[0]
    if not isinstance(key, Ed25519PrivateKey):
        what = reason if key is None else f"a {type(key).__name__}"
        raise StateError(f"{SIGNING_ENV}={path}: not an unencrypted Ed25519 private key in PEM ({what}). "
                         f"Fix: {_GENERATE} and set {SIGNING_ENV} to its {PRIVATE_FILE}")  # fmt: skip
    return Signer(key, path)


@functools.lru_cache(maxsize=4)
def _public(path: str, data: bytes) -> Verifier:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        key = None
        reason = str(exc).split("\n")[0]
    if not isinstance(key, Ed25519PublicKey):
        what = reason if key is None else f"a {type(key).__name__}"
        raise StateError(f"{VERIFY_ENV}={path}: not an Ed25519 public key in PEM ({what}). "
                         f"Fix: set {VERIFY_ENV} to the {PUBLIC_FILE} that `mlrm keys generate DIR` wrote")  # fmt: skip
    return Verifier(key, path)


def signer_from_env() -> Signer | None:
    """The private key MLRM_SIGNING_KEY names, or None when it is unset."""
    found = _read_key(SIGNING_ENV)
    return None if found is None else _private(*found)


def verifier_from_env() -> Verifier | None:
    """The public key MLRM_VERIFY_KEY names, or None when it is unset (unsigned versions load)."""
    found = _read_key(VERIFY_ENV)
    return None if found is None else _public(*found)


def generate(folder: Path) -> tuple[Path, Path]:
    """Write a new key pair into folder (signing.key readable by its owner only); refuses to overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing:
        raise StateError(f"{', '.join(existing)} already exist(s); a new pair would orphan every version signed "
                         f"with the old key. Fix: choose another folder, or delete the old pair first")  # fmt: skip
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public
