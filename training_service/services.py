"""The config sets a training service serves: every folder with a service.yaml
directly under the config root, by service name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mlrm.config import ServiceConfig, load_config_set
from mlrm.config.loader import SERVICE_FILE
from mlrm.errors import ConfigError, ConfigProblem, NotFoundError, did_you_mean

log = logging.getLogger("training_service.services")


class ConfigRoot:
    """Config sets under one folder; service.yaml is re-read when it changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.configs: dict[str, ServiceConfig] = {}
        self._mtimes: dict[str, int] = {}
        self._load_all()

    def _load_all(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(
                [ConfigProblem(str(self.root), "", "no such folder: pass the folder that holds config sets")]
            )
        problems: list[ConfigProblem] = []
        for folder in sorted(p for p in self.root.iterdir() if (p / SERVICE_FILE).is_file()):
            try:
                config = load_config_set(folder)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            other = self.configs.get(config.name)
            if other is not None:
                problems.append(ConfigProblem(
                    str(folder / SERVICE_FILE), "name",
                    f"'{config.name}' is also the name of {other.path}; service names must be unique under {self.root}",
                ))  # fmt: skip
                continue
            self.configs[config.name] = config
            self._mtimes[config.name] = self._mtime(config)
        if problems:
            raise ConfigError(problems)
        if not self.configs:
            raise ConfigError([ConfigProblem(
                str(self.root), "", f"no config set here: expected folders with a {SERVICE_FILE}, e.g. {self.root}/my-model/"
            )])  # fmt: skip

    @staticmethod
    def _mtime(config: ServiceConfig) -> int:
        try:
            return os.stat(config.path / SERVICE_FILE).st_mtime_ns
        except FileNotFoundError:
            return 0

    def names(self) -> list[str]:
        return sorted(self.configs)

    def get(self, name: str) -> ServiceConfig:
        """The config set named `name` (NotFoundError naming the known ones)."""
        config = self.configs.get(name)
        if config is None:
            known = ", ".join(self.names())
            raise NotFoundError(
                f"no service named {name!r} under {self.root}.{did_you_mean(name, self.configs)} Known: {known}"
            )
        mtime = self._mtime(config)
        if mtime != self._mtimes[name]:
            self._mtimes[name] = mtime
            try:
                fresh = load_config_set(config.path)
            except ConfigError as exc:
                log.error("%s changed but is invalid; still using the version loaded before:\n%s", config.path, exc)
                return config
            if fresh.name == name:
                self.configs[name] = config = fresh
        return config
