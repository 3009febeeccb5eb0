"""The config sets a training service serves: every folder with a service.yaml
directly under the config root, by service name.

A set that cannot be used (it needs an extra this install lacks, or it is
broken) does not take the service down: it is kept as an UnusableSet (mlrm/config/unusable.py), with the
problems and the fix, and its endpoints answer 503 until its service.yaml
changes and loads. `mlrm validate` still refuses it (exit 2).

The full check of a set asks scikit-learn about its hyperparameters, and
importing scikit-learn costs a process about 100 MB that it keeps. The
training service's processes (API, scheduler) never fit a model, so the full
check runs in a forked child that reports the problems and exits
(`check_apart`); these processes load the sets without it (deep=False), and
only a job, which fits, imports scikit-learn.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from mlrm.config import ServiceConfig, load_config_set
from mlrm.config.loader import SERVICE_FILE
from mlrm.config.unusable import UnusableSet
from mlrm.errors import ConfigError, ConfigProblem, NotFoundError, did_you_mean

log = logging.getLogger("training_service.services")
OWNER = "the training service"  # named in the fix of a set that needs an extra: what to restart


def _mtime(path: Path) -> int:
    try:
        return os.stat(path / SERVICE_FILE).st_mtime_ns
    except FileNotFoundError:
        return 0


# (folder, mtime of its service.yaml) -> the problems of its full check: the service's processes fork
# from the one that checked first (API workers, scheduler), so each file is checked once per change.
_checked: dict[tuple[str, int], list[ConfigProblem]] = {}


def _full_check(folders: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Runs in the child of check_apart."""
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in folders:
        try:
            load_config_set(folder)
        except ConfigError as exc:
            found[str(folder)] = [dataclasses.asdict(p) for p in exc.problems]
    return found


def check_apart(folders: list[Path]) -> dict[Path, list[ConfigProblem]]:
    """Every problem the full check (load_config_set) finds in each folder, found in a forked child
    so that scikit-learn never enters this process. If the child fails, none (and nothing remembered):
    the hyperparameters are then checked by the job that fits them."""
    todo = [f for f in folders if (str(f), _mtime(f)) not in _checked]
    if todo:
        stamps = {str(f): _mtime(f) for f in todo}  # before the check: an edit meanwhile is checked again
        sys.stdout.flush()
        sys.stderr.flush()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: check, answer, exit without running the parent's exit handlers
            code = 1
            try:
                os.close(read)
                with os.fdopen(write, "wb") as out:
                    out.write(json.dumps(_full_check(todo)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as answer:
            raw = answer.read()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped by a handler of the process (gunicorn's); its answer is what counts
        try:
            found = json.loads(raw)
        except ValueError:
            # Killed for memory, most likely: importing scikit-learn here could take the service down with it.
            log.warning("the full check of %s in a child process failed (killed for memory?); their hyperparameters "
                        "are checked when a job fits them", ", ".join(str(f) for f in todo))  # fmt: skip
            return {f: [] for f in folders}
        for folder in todo:
            problems = [ConfigProblem(**p) for p in found.get(str(folder), [])]
            _checked[(str(folder), stamps[str(folder)])] = problems
    return {f: _checked.get((str(f), _mtime(f)), []) for f in folders}


def load_checked(folder: Path) -> ServiceConfig:
    """load_config_set(folder), its hyperparameters checked in a child (check_apart)."""
    problems = check_apart([folder])[folder]
    if problems:
        raise ConfigError(problems)
    return load_config_set(folder, deep=False)


class ConfigRoot:
    """Config sets under one folder; service.yaml is re-read when it changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.configs: dict[str, ServiceConfig] = {}
        self.unavailable: dict[str, UnusableSet] = {}
        self._mtimes: dict[str, int] = {}
        self._load_all()

    def _load_all(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(
                [ConfigProblem(str(self.root), "", "no such folder: pass the folder that holds config sets")]
            )
        folders = sorted(p for p in self.root.iterdir() if (p / SERVICE_FILE).is_file())
        if not folders:
            raise ConfigError([ConfigProblem(
                str(self.root), "", f"no config set here: expected folders with a {SERVICE_FILE}, e.g. {self.root}/my-model/"
            )])  # fmt: skip
        check_apart(folders)  # one child checks them all
        for folder in folders:
            self._load(folder)

    def _load(self, folder: Path) -> None:
        """Load one folder into configs, or into unavailable with its problems."""
        mtime = _mtime(folder)
        try:
            config = load_checked(folder)
        except ConfigError as exc:
            self._set_unavailable(folder.name, folder.resolve(), tuple(exc.problems), mtime)
            return
        other = self.configs.get(config.name)
        if other is not None and other.path != config.path:
            problem = ConfigProblem(
                str(folder / SERVICE_FILE), "name",
                f"'{config.name}' is also the name of {other.path}; service names must be unique under {self.root}",
            )  # fmt: skip
            self._set_unavailable(folder.name, folder.resolve(), (problem,), mtime)
            return
        self.unavailable.pop(config.name, None)
        self.configs[config.name] = config
        self._mtimes[config.name] = mtime

    def _set_unavailable(self, name: str, path: Path, problems: tuple[ConfigProblem, ...], mtime: int) -> None:
        self.unavailable[name] = UnusableSet(name, path, problems, owner=OWNER)
        self._mtimes[name] = mtime

    def _retry_changed(self) -> None:
        """Load again every unusable set whose service.yaml changed on disk (fixed, maybe)."""
        for name, item in list(self.unavailable.items()):
            if _mtime(item.path) != self._mtimes[name]:
                self._load(item.path)
                if name not in self.unavailable:
                    log.info("config set '%s' is usable again", name)

    def require_one(self) -> None:
        """ConfigError with every problem when no set here is usable: a service with nothing to serve must not start."""
        if not self.configs:
            raise ConfigError([p for n in sorted(self.unavailable) for p in self.unavailable[n].problems])

    def names(self) -> list[str]:
        """The usable config sets."""
        self._retry_changed()
        return sorted(self.configs)

    def describe_unavailable(self) -> list[dict[str, Any]]:
        """Every set that cannot be used now, with its reason and fix."""
        self._retry_changed()
        return [self.unavailable[n].as_dict() for n in sorted(self.unavailable)]

    def get(self, name: str) -> ServiceConfig:
        """The config set named `name` (503 if unusable, 404 naming the known ones)."""
        if name in self.unavailable:
            self._retry_changed()
        config = self.configs.get(name)
        if config is None:
            missing = self.unavailable.get(name)
            if missing is None:
                known = ", ".join(sorted({*self.configs, *self.unavailable}))
                raise NotFoundError(
                    f"no service named {name!r} under {self.root}.{did_you_mean(name, self.configs)} Known: {known}"
                )
            raise missing.error()
        mtime = _mtime(config.path)
        if mtime != self._mtimes[name]:
            self._mtimes[name] = mtime
            try:
                fresh = load_checked(config.path)
            except ConfigError as exc:
                log.error("%s changed but is invalid; still using the version loaded before:\n%s", config.path, exc)
                return config
            if fresh.name == name:
                self.configs[name] = config = fresh
        return config
