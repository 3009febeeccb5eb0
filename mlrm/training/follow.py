"""Following a training service: a gateway whose training is remote keeps each
config set on the version the centre says is current.

Each check asks `GET /v1/services/NAME/current` with the ETag of the last
answer, so an unchanged centre answers 304 and nothing more happens. A new
current version that is not here yet is fetched as a bundle (its manifest,
then file by file, each no larger than announced), checked (every sha256,
and the signature when MLRM_VERIFY_KEY is set) and written with the same
atomic protocol as a local training job (VersionStore.install); a version
that is here already (a rollback at the centre) is only made current again.
The ML services notice the new current version as they do after a local job.

Transport-free: HTTP goes through TrainingServiceClient, the one client of the
training API. While the centre cannot be reached nothing changes here: the
services keep serving the last good version, checks are retried with a
growing delay, and the outage and the recovery are each said once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from mlrm.config.schema import TRAINING
from mlrm.errors import MlrmError, RemoteError, StateError
from mlrm.storage.versions import VersionStore
from mlrm.training.remote import TrainingServiceClient

log = logging.getLogger("mlrm.training.follow")

# A version larger than this is refused before it is downloaded (it would be held in memory to check it).
MAX_VERSION_BYTES = 1 << 30
# While the centre cannot be reached the wait doubles, up to this many intervals and at most MAX_BACKOFF s.
BACKOFF_INTERVALS = 12
MAX_BACKOFF = 60.0
Say = Callable[[str], None]


def follower_of(config_set: Path, url: str, token_file: Path | None = None) -> Follower:
    """The Follower of a config set, from its service.yaml's `name` and `training.keep_versions`
    (read without loading the set: no scikit-learn in the process that follows)."""
    file = Path(config_set) / "service.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    training = data.get("training") if isinstance(data, dict) else None
    keep = (training or {}).get("keep_versions", TRAINING["properties"]["keep_versions"]["default"])
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or type(keep) is not int or keep < 1:
        raise StateError(f"{file}: no usable 'name' or training.keep_versions (`mlrm validate {config_set}` says why)")
    return Follower(str(data["name"]), Path(config_set) / "learned", url, token_file=token_file, keep=keep)


class Follower:
    """Keeps one config set's learned/ on the centre's current version."""

    def __init__(
        self,
        name: str,
        learned_dir: Path,
        url: str,
        *,
        timeout: float = 10.0,
        token_file: Path | None = None,
        keep: int | None = None,
    ) -> None:
        self.name, self.url, self.timeout, self.token_file = name, url.rstrip("/"), timeout, token_file
        self.keep = keep  # versions kept here (training.keep_versions), as a local job keeps them; None: all
        self.store = VersionStore(learned_dir)
        self.etag: str | None = None

    def check(self) -> str | None:
        """One check: what changed here (for the log), or None. RemoteError, StateError: nothing changed."""
        with TrainingServiceClient(self.url, timeout=self.timeout, token_file=self.token_file) as client:
            current, etag = client.current(self.name, self.etag)
            if current is None:
                return None
            version, digest = int(current["version"]), str(current["parameters_sha256"])
            try:
                pointer = self.store.pointer()
            except StateError:  # a corrupt current.yaml here: the centre's answer replaces it
                pointer = None
            said = None
            if pointer is None or (pointer.version, pointer.parameters_sha256) != (version, digest):
                said = self._take(client, version, digest)
            self.etag = etag  # only once this answer is applied: a failed download is tried again
            return said

    def _take(self, client: TrainingServiceClient, version: int, digest: str) -> str:
        source = f"version {version} of {self.name} from {self.url}"
        if version in self.store.versions():
            # The centre rolled back (or forward) to a version this gateway holds: same digest, or refused.
            self.store.install(version, {}, digest)
            return f"{source}: held here already, verified; now current again"
        bundle = client.bundle(self.name, version)
        files = bundle.get("files") or []
        total = sum(int(f.get("size", 0)) for f in files)
        if total > MAX_VERSION_BYTES:
            raise StateError(f"{source}: {total} bytes, more than the {MAX_VERSION_BYTES} a gateway takes; not fetched")
        data: dict[str, bytes] = {}
        for item in files:
            file = str(item["name"])
            if "/" in file or file.startswith(".") or not file:
                raise StateError(f"{source}: the bundle names a file {file!r}; refused")
            path = f"/v1/services/{quote(self.name)}/versions/{version}/files/{quote(file)}"
            data[file] = client.download(path, int(item["size"]))
        self.store.install(version, data, digest)
        if self.keep is not None:
            self.store.prune(self.keep)  # never the current one; one pruned comes back if the centre returns to it
        signed = " and the signature" if "signature.yaml" in data else ""
        return f"{source}: {len(data)} files, every sha256{signed} verified; now current"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class _Due:
    follower: Follower
    at: float = 0.0
    failures: int = 0
    last_error: str | None = field(default=None)
    last_check: str | None = None  # UTC, ISO 8601: when the centre was last asked
    unreachable_since: str | None = None  # the first failed ask of an outage; None while it answers

    def report(self) -> dict[str, Any]:
        """What `mlrm status` shows of this follower (JSON-ready)."""
        try:
            version: int | None = self.follower.store.current()
        except StateError:
            version = None
        return {
            "name": self.follower.name,
            "config_set": str(self.follower.store.root.parent),
            "url": self.follower.url,
            "last_check": self.last_check,
            "version": version,
            "reachable": None if self.last_check is None else self.unreachable_since is None,
            "unreachable_since": self.unreachable_since,
            "last_error": self.last_error,
        }


class Following:
    """Checks followers every `interval` seconds in one thread; each backs off on its own while it fails."""

    def __init__(
        self,
        followers: list[Follower],
        interval: float,
        say: Say,
        warn: Say | None = None,
        on_check: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.interval, self.say, self.warn = interval, say, warn or say
        self.on_check = on_check  # told report() after every check (mlrm up writes it for `mlrm status`)
        self._due = [_Due(f) for f in followers]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def longest(self) -> float:
        """The longest wait between two asks while they fail."""
        return max(self.interval, min(MAX_BACKOFF, BACKOFF_INTERVALS * self.interval))

    @property
    def followers(self) -> list[Follower]:
        return [d.follower for d in self._due]

    def report(self) -> list[dict[str, Any]]:
        """Per follower: last check, version held here, whether the centre answers (or since when not), last error."""
        return [d.report() for d in self._due]

    def update(self, followers: list[Follower]) -> None:
        """Follow these from now on (a reloaded manifest); one already followed keeps its ETag and backoff."""
        known = {(d.follower.name, d.follower.store.root, d.follower.url): d for d in self._due}
        self._due = [known.get((f.name, f.store.root, f.url)) or _Due(f) for f in followers]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlrm-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop asking; a download under way is left behind (an install cut short leaves no trace)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for due in list(self._due):
                if due.at <= now and not self._stop.is_set():
                    try:
                        self.check(due)
                    except Exception:  # noqa: BLE001 (the thread must outlive any one failure)
                        log.exception("following %s failed", due.follower.url)
                        due.at = time.monotonic() + self.longest
                    if self.on_check is not None:
                        try:
                            self.on_check(self.report())
                        except Exception:  # noqa: BLE001 (a report not written must not stop following)
                            log.exception("reporting on following %s failed", due.follower.url)
            wake = min((d.at for d in self._due), default=time.monotonic() + self.interval)
            self._stop.wait(max(0.01, wake - time.monotonic()))

    def check(self, due: _Due) -> bool:
        """One check of one follower, with its outage said once and its recovery said once; whether it went well."""
        f = due.follower
        due.last_check = _now()
        try:
            said = f.check()
        except (MlrmError, OSError, ValueError, KeyError, TypeError) as exc:
            # Not reached (no answer at all) or reached with an error (HTTP problem, a bundle refused here).
            unreachable = isinstance(exc, RemoteError) and exc.status is None
            if not unreachable:
                due.unreachable_since = None
            elif due.unreachable_since is None:
                due.unreachable_since = due.last_check
            due.failures += 1
            delay = min(self.interval * 2 ** min(due.failures, 16), self.longest)
            due.at = time.monotonic() + delay
            error = str(exc)
            if due.failures == 1 or type(exc) is not RemoteError and error != due.last_error:
                try:
                    keeps: int | str | None = f.store.current()
                except StateError as bad:
                    keeps = f"none ({bad})"
                what = error if isinstance(exc, RemoteError) else f"cannot follow {f.url}: {error}"
                self.warn(
                    f"{f.name}: {what}; still serving version {keeps}, asking again with backoff "
                    f"(up to {self.longest:g}s)"
                )
            due.last_error = error
            return False
        due.unreachable_since = None
        if due.failures:
            self.say(f"{f.name}: {f.url} answers again after {due.failures} failed check(s)")
        due.failures, due.last_error = 0, None
        due.at = time.monotonic() + self.interval
        if said:
            self.say(said)
        return True
