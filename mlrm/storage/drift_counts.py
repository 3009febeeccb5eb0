"""Per-process drift counts of one served version, shared through small files and summed at read time.

Every process that predicts for a config set (each gunicorn worker, the MQTT
bridge) writes its own file `<name>-v<version>.<token>.npy` in one folder:
a 2-D int64 array, one row per time bucket, column 0 the bucket's number and
the others the slot counts (mlrm.core.profile.Binner). A file is replaced
whole (temporary file, rename), so a reader sees an old or a new one, never
a torn one; no lock is ever taken. Readers add up the rows of the buckets in
the window over every file of the version, and delete files nobody wrote to
for two windows (a worker that ended). The counts are monitoring data, not
state: they are not fsynced, and a lost file only shortens the window.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class DriftCounts:
    """The count files of one version of one config set in `directory`."""

    def __init__(self, directory: Path, name: str, version: int, token: str) -> None:
        self.directory = Path(directory)
        self.prefix = _UNSAFE.sub("_", name)
        self.key = f"{self.prefix}-v{version}"
        self.file = self.directory / f"{self.key}.{token}.npy"

    def write(self, buckets: dict[int, np.ndarray]) -> None:
        """Replace this process's file with its buckets."""
        if not buckets:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        table = np.array([[bucket, *counts] for bucket, counts in sorted(buckets.items())], dtype=np.int64)
        tmp = self.file.with_name(f".{self.file.name}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, table, allow_pickle=False)
        os.replace(tmp, self.file)

    def total(self, slots: int, first_bucket: int, stale_after_s: float) -> np.ndarray:
        """Counts of every process's buckets numbered first_bucket or later (files of another shape are skipped)."""
        out = np.zeros(slots, dtype=np.int64)
        now = time.time()
        for path in self.directory.glob(f"{self.prefix}-v*.npy"):
            try:
                if now - path.stat().st_mtime > stale_after_s:
                    path.unlink(missing_ok=True)  # a process gone (or a version no longer served)
                    continue
                if not path.name.startswith(f"{self.key}."):
                    continue
                table = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                continue  # replaced or removed while read: its counts come in the next read
            if table.ndim == 2 and table.shape[1] == slots + 1 and table.dtype == np.int64:
                out += table[table[:, 0] >= first_bucket, 1:].sum(axis=0)
        return out
