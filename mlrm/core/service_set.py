"""Several config sets served by one process: a Service per usable set, the reason for each unusable one.

Transport-free: `mlrm serve a b` (or a folder of sets) builds one ServiceSet, and the REST app
routes `/v1/models/{name}/...` through it. A set whose service.yaml does not load does not keep
the others from serving: it is kept as an UnusableSet (mlrm/config/unusable.py), with its problems and the fix, and every route
of it answers 503 until its service.yaml changes and loads (checked when it is asked for).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlrm.config import ServiceConfig, load_config_set
from mlrm.config.loader import SERVICE_FILE
from mlrm.config.unusable import UnusableSet
from mlrm.core.service import Service
from mlrm.errors import ConfigError, ConfigProblem, NotFoundError, did_you_mean

log = logging.getLogger("mlrm.core.service_set")
OWNER = "mlrm serve"  # named in the fix of a set that needs an extra: what to restart


def _mtime(folder: Path) -> int:
    try:
        return os.stat(folder / SERVICE_FILE).st_mtime_ns
    except OSError:
        return 0


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """The config set folders that paths name: a folder with a service.yaml is one set; a folder
    without one but with sets in its subfolders stands for all of them (sorted). Anything else is
    kept as given, so loading it says what is wrong."""
    folders: list[Path] = []
    for given in paths:
        path = Path(given)
        inner = sorted(p for p in path.iterdir() if (p / SERVICE_FILE).is_file()) if path.is_dir() else []
        folders.extend(inner if inner and not (path / SERVICE_FILE).is_file() else [path])
    return folders


class ServiceSet:
    """The config sets one process serves, by name (the `name` in each service.yaml)."""

    def __init__(self, folders: Sequence[str | Path], *, make: Callable[[ServiceConfig], Service] = Service) -> None:
        self._make = make
        self.services: dict[str, Service] = {}
        self.unusable: dict[str, UnusableSet] = {}
        self._mtimes: dict[str, int] = {}
        self.listeners: list[Callable[[Service], None]] = []  # told when a fixed set starts to serve
        duplicates: list[ConfigProblem] = []
        for folder in folders:
            self._load(Path(folder), duplicates)
        if duplicates:
            raise ConfigError(duplicates)

    @classmethod
    def of(cls, services: Sequence[Service]) -> ServiceSet:
        """A set of Services built already (one process serving one set: `create_app(config)`)."""
        out = cls([])
        out.services = {s.name: s for s in services}
        return out

    def _load(self, folder: Path, duplicates: list[ConfigProblem]) -> None:
        mtime = _mtime(folder)
        try:
            config = load_config_set(folder)
        except ConfigError as exc:
            name = folder.resolve().name
            self.unusable[name] = UnusableSet(name, folder.resolve(), tuple(exc.problems), owner=OWNER)
            self._mtimes[name] = mtime
            return
        other = self.services.get(config.name)
        if other is not None:
            duplicates.append(ConfigProblem(
                str(config.path / SERVICE_FILE), "name", f"'{config.name}' is also the name of {other.config.path}; "
                "the config sets one process serves need unique names (the {name} of /v1/models/{name}/...)",
            ))  # fmt: skip
            return
        self.services[config.name] = self._make(config)

    def require_one(self) -> None:
        """ConfigError with every problem when no set is usable: a process with nothing to serve must not start."""
        if not self.services:
            raise ConfigError([p for n in sorted(self.unusable) for p in self.unusable[n].problems])

    def _retry(self, name: str) -> None:
        """Load an unusable set again if its service.yaml changed (fixed, maybe)."""
        item = self.unusable[name]
        mtime = _mtime(item.path)
        if mtime == self._mtimes[name]:
            return
        self._mtimes[name] = mtime
        try:
            config = load_config_set(item.path)
        except ConfigError as exc:
            self.unusable[name] = UnusableSet(name, item.path, tuple(exc.problems), owner=OWNER)
            return
        if config.name != name and config.name in self.services:
            problem = ConfigProblem(str(item.path / SERVICE_FILE), "name", f"'{config.name}' is served already")
            self.unusable[name] = UnusableSet(name, item.path, (problem,), owner=OWNER)
            return
        del self.unusable[name]
        service = self.services[config.name] = self._make(config)
        log.info("config set '%s' (%s) loads now and serves", config.name, item.path)
        for listener in self.listeners:
            listener(service)

    def names(self) -> list[str]:
        return sorted({*self.services, *self.unusable})

    def only(self) -> str | None:
        """The name of the one set served, when exactly one is (what /v1/predict answers for)."""
        names = self.names()
        return names[0] if len(names) == 1 else None

    def get(self, name: str) -> Service:
        """The Service of a set by name: 404 naming the served ones, 503 with the fix for an unusable one."""
        if name in self.unusable:
            self._retry(name)
        service = self.services.get(name)
        if service is not None:
            return service
        item = self.unusable.get(name)
        if item is not None:
            raise item.error()
        raise NotFoundError(
            f"no model named {name!r} here.{did_you_mean(name, self.names())} This service serves: "
            f"{', '.join(self.names())} (GET /v1/models lists them)"
        )

    def describe(self) -> list[dict[str, Any]]:
        """Every set: name, path, available, ready, version; an unusable one with its reason and fix."""
        for name in list(self.unusable):
            self._retry(name)
        out: list[dict[str, Any]] = []
        for name in self.names():
            if name in self.unusable:
                out.append({**self.unusable[name].as_dict(), "ready": False, "version": None})
                continue
            service = self.services[name]
            service.maybe_reload()
            entry = {"name": name, "path": str(service.config.path), "available": True, "ready": service.ready,
                     "version": service.version}  # fmt: skip
            if not service.ready:
                entry["reason"] = service.load_error or "no trained model yet"
                entry["fix"] = f"mlrm train {service.config.path} --data FILE.csv"
            out.append(entry)
        return out
