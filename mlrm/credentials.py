"""API tokens with scopes: the tokens file services check, and the token clients send.

A tokens file holds names, scopes and the sha256 of each token, never a token:

    tokens:
      - name: line-3-camera
        scopes: [predict]
        sha256: 9f86d0...

`mlrm token create` writes it (the token is printed once). A service re-reads
the file when it changes, so a token is rotated or revoked without a restart.
A presented token is hashed and compared with every entry in constant time.
Without a tokens file every route is open: the loopback default for a novice.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlrm.errors import MlrmError, RequestError

# predict: /v1/predict and OIP infer; ingest: samples and feedback; admin: train, reload, rollback,
# versions, config; metrics: /metrics (what a Prometheus scraper gets, and nothing more).
SCOPES = ("predict", "ingest", "admin", "metrics")
TOKENS_FILE_ENV = "MLRM_TOKENS_FILE"  # a service's tokens file, when --tokens is not given
TOKEN_ENV = "MLRM_TOKEN"  # the token a client sends
TOKEN_FILE_ENV = "MLRM_TOKEN_FILE"  # ...or the file that holds it
CHALLENGE = 'Bearer realm="mlrm"'
CREATE_HINT = "mlrm token create NAME --scopes predict,ingest,admin --file tokens.yaml"

log = logging.getLogger("mlrm.credentials")


class CredentialsError(MlrmError):
    """A tokens file or token file that cannot be used; says which and how to fix it."""


class Refused(RequestError):
    """401 (no or unknown token) or 403 (a token without the scope); who: the token's name, if known."""

    def __init__(self, status: int, who: str | None, detail: str) -> None:
        title, kind = ("Unauthorized", "unauthorized") if status == 401 else ("Forbidden", "forbidden")
        super().__init__(title=title, status=status, detail=detail, kind=kind)
        self.who = who


@dataclass(frozen=True)
class Entry:
    name: str
    scopes: frozenset[str]
    sha256: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse(path: Path, text: str) -> list[Entry]:
    """The entries of a tokens file; CredentialsError naming the entry and field that is wrong."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CredentialsError(f"{path}: not valid YAML ({exc}). Recreate it with: {CREATE_HINT}") from None
    items = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CredentialsError(f"{path}: expected 'tokens: [{{name, scopes, sha256}}, ...]'. Create it: {CREATE_HINT}")
    entries = []
    for i, item in enumerate(items):
        where = f"{path}: tokens[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "scopes", "sha256"}:
            raise CredentialsError(f"{where}: expected exactly the keys name, scopes, sha256")
        scopes, sha = item["scopes"], item["sha256"]
        unknown = [s for s in scopes if s not in SCOPES] if isinstance(scopes, list) else ["?"]
        if unknown:
            raise CredentialsError(f"{where}.scopes: unknown scope {unknown[0]!r}; use a list of {', '.join(SCOPES)}")
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise CredentialsError(f"{where}.sha256: expected 64 lowercase hex digits (the token's sha256)")
        entries.append(Entry(str(item["name"]), frozenset(scopes), sha))
    return entries


class TokensFile:
    """A tokens file, re-read whenever it changes on disk (rotation without a restart)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        self.entries()  # a bad file stops start-up here, with the fix

    def entries(self) -> list[Entry]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            if self._stamp is None:
                raise CredentialsError(f"{self.path}: no such tokens file. Create it: {CREATE_HINT}") from None
            stamp = (0, 0, 0)  # removed while running: every token is refused until it is back
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._entries = parse(self.path, self.path.read_text(encoding="utf-8")) if stamp[0] else []
                except (CredentialsError, OSError) as exc:
                    if self._stamp is None:
                        raise
                    log.error("tokens file unusable, keeping the tokens read before: %s", exc)
                self._stamp = stamp
        return self._entries

    def identify(self, token: str) -> Entry | None:
        """The entry whose hash matches, comparing with every entry in constant time."""
        presented, found = digest(token), None
        for entry in self.entries():
            if hmac.compare_digest(presented, entry.sha256):
                found = entry
        return found


def bearer(header: str | None) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header, or None."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Guard:
    """Decides, per route scope, whether a request may go on; None tokens: everything is open."""

    def __init__(self, tokens: TokensFile | None) -> None:
        self.tokens = tokens

    def check(self, scope: str | None, authorization: str | None) -> str | None:
        """The name of the token that allows scope (None for an open route or no tokens file); else RequestError."""
        if scope is None or self.tokens is None:
            return None
        token = bearer(authorization)
        entry = self.tokens.identify(token) if token else None
        if entry is None:
            said = "no token was sent" if token is None else "the token sent is unknown (revoked or mistyped)"
            raise Refused(
                401, None,
                f"{said}; this route needs a token with scope '{scope}'. Send 'Authorization: Bearer TOKEN' "
                f"(an operator makes one: mlrm token create NAME --scopes {scope} --file TOKENS_FILE; "
                f"mlrm clients read {TOKEN_ENV} or {TOKEN_FILE_ENV})",
            )  # fmt: skip
        if scope not in entry.scopes:
            raise Refused(
                403, entry.name,
                f"token '{entry.name}' has scopes {', '.join(sorted(entry.scopes)) or 'none'}; this route needs "
                f"scope '{scope}'. Use a token with it, or recreate this one: "
                f"mlrm token create {entry.name} --scopes {','.join(sorted(entry.scopes | {scope}))} --file TOKENS_FILE",
            )  # fmt: skip
        return entry.name

    def allows(self, scope: str | None, authorization: str | None) -> bool:
        """Whether check() would let the request go on (the fast predict path asks this)."""
        try:
            self.check(scope, authorization)
        except RequestError:
            return False
        return True


def guard_of(path: str | Path | None) -> Guard:
    """The guard of a service started with this tokens file (None: no tokens, everything open)."""
    return Guard(TokensFile(path) if path else None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serving_tokens(command: str, host: str, tokens: str | None, insecure: bool) -> Path | None:
    """The tokens file a service starts with (--tokens, else MLRM_TOKENS_FILE; None: no credentials).

    Off loopback with none and without --insecure it must not start: CredentialsError (exit 2) says how
    to make a token. With --insecure it starts, and says so on every start.
    """
    path = tokens or os.environ.get(TOKENS_FILE_ENV) or None
    if path:
        TokensFile(path)  # a missing or broken file stops start-up here, with the fix
        return Path(path).resolve()
    if is_loopback(host):
        return None
    if not insecure:
        raise CredentialsError(
            f"refusing to listen on {host} without credentials: anyone who reaches the port could predict, "
            f"post samples, train and roll back. Create a token ({CREATE_HINT}) and pass --tokens tokens.yaml "
            f"(or set {TOKENS_FILE_ENV}); or bind 127.0.0.1; or, on a network you trust entirely, add --insecure."
        )
    print(
        f"mlrm {command}: WARNING: --insecure: listening on {host} with no credentials; every route is open "
        f"to anyone who reaches the port. Create tokens: {CREATE_HINT}",
        file=sys.stderr, flush=True,
    )  # fmt: skip
    return None


def add_options(parser: argparse.ArgumentParser) -> None:
    """--tokens and --insecure, as `mlrm serve` and `mlrm training-service` take them."""
    parser.add_argument(
        "--tokens", metavar="FILE",
        help=f"API tokens with scopes (default: ${TOKENS_FILE_ENV}); requests then need 'Authorization: Bearer "
        f"TOKEN'. Re-read when it changes. Make one: {CREATE_HINT}. See docs/security.md",
    )  # fmt: skip
    parser.add_argument(
        "--insecure", action="store_true",
        help="allow --host off loopback without --tokens (every route open to the network; warned on every start)",
    )  # fmt: skip


def create(path: str | Path, name: str, scopes: list[str]) -> str:
    """Add (or replace: rotate) the token called name in a tokens file; the new token, to show once."""
    path = Path(path)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        said = f"unknown scope {unknown[0]!r}" if unknown else "give at least one"
        raise CredentialsError(f"--scopes: {said}; choose from {', '.join(SCOPES)}")
    entries = [e for e in (parse(path, path.read_text(encoding="utf-8")) if path.exists() else []) if e.name != name]
    token = "mlrm_" + secrets.token_urlsafe(32)
    entries.append(Entry(name, frozenset(scopes), digest(token)))
    write(path, entries)
    return token


def revoke(path: str | Path, name: str) -> bool:
    """Remove the token called name; whether there was one."""
    path = Path(path)
    entries = parse(path, path.read_text(encoding="utf-8"))
    kept = [e for e in entries if e.name != name]
    write(path, kept)
    return len(kept) != len(entries)


def write(path: Path, entries: list[Entry]) -> None:
    """Replace the file atomically (a service never reads half of it), readable by its owner only."""
    data = {"tokens": [{"name": e.name, "scopes": sorted(e.scopes), "sha256": e.sha256} for e in entries]}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# mlrm tokens: sha256 of each token, never the token (mlrm token create/revoke)\n")
        fh.write(yaml.safe_dump(data, sort_keys=False))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def client_token() -> str | None:
    """The token an mlrm client sends: MLRM_TOKEN, else the file MLRM_TOKEN_FILE names, else None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    file = os.environ.get(TOKEN_FILE_ENV)
    if not file:
        return None
    try:
        return Path(file).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise CredentialsError(f"{TOKEN_FILE_ENV}={file}: cannot read the token file ({exc.strerror})") from None


def cmd_token(args: argparse.Namespace) -> int:
    """`mlrm token create|revoke|list`: manage a tokens file; a running service notices at once."""
    if args.action == "create":
        if not args.name or not args.scopes:
            raise CredentialsError("mlrm token create needs NAME and --scopes, e.g. " + CREATE_HINT)
        token = create(args.file, args.name, [s.strip() for s in args.scopes.split(",") if s.strip()])
        print(token)
        print(f"token '{args.name}' ({args.scopes}) written to {args.file} as its sha256; it is shown only "
              "this once. Clients send it as 'Authorization: Bearer TOKEN' (mlrm reads MLRM_TOKEN or "
              "MLRM_TOKEN_FILE)", file=sys.stderr)  # fmt: skip
        return 0
    path = Path(args.file)
    if not path.exists():
        raise CredentialsError(f"{path}: no such tokens file. Create it: {CREATE_HINT}")
    if args.action == "revoke":
        if not args.name:
            raise CredentialsError("mlrm token revoke needs the NAME of the token")
        if not revoke(path, args.name):
            names = ", ".join(e.name for e in parse(path, path.read_text(encoding="utf-8"))) or "none"
            raise CredentialsError(f"{path} has no token '{args.name}' (tokens there: {names})")
        print(f"token '{args.name}' revoked; running services refuse it from their next request", file=sys.stderr)
        return 0
    for entry in parse(path, path.read_text(encoding="utf-8")):
        print(f"{entry.name}\t{','.join(sorted(entry.scopes))}")
    return 0


def register(add: Any) -> None:
    """Add `mlrm token` to the command line."""
    s = add(
        "token",
        "Create (or rotate), revoke and list API tokens in a tokens file that `mlrm serve --tokens` and "
        f"`mlrm training-service --tokens` check. Scopes: {', '.join(SCOPES)}. Only the sha256 is stored.",
        "mlrm token create line-3 --scopes predict,ingest --file tokens.yaml",
        cmd_token,
    )
    s.add_argument("action", choices=["create", "revoke", "list"])
    s.add_argument("name", nargs="?", metavar="NAME", help="the token's name (shown in the audit log)")
    s.add_argument("--scopes", metavar="LIST", help=f"comma-separated, of: {', '.join(SCOPES)}")
    s.add_argument("--file", required=True, metavar="FILE", help="the tokens file (created if missing)")
