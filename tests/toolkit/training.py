"""The training service's test data: breast-cancer with a deliberately weak
version 1, so that better data visibly helps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mlrm.config import load_config_set
from mlrm.storage.versions import VersionRecord, VersionStore
from mlrm.training import trainer
from training_service import jobs
from training_service.store import Job
from training_service.store_url import open_store

NAME = "breast-cancer"


def weak_version(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the shipped learned state by a poor version 1: 30 rows, 30% of labels flipped."""
    shutil.rmtree(folder / "learned", ignore_errors=True)
    weak = [dict(r) for r in rows[:30]]
    for r in weak[:9]:
        r["diagnosis"] = "benign" if r["diagnosis"] == "malignant" else "malignant"
    trainer.train(load_config_set(folder), weak)


class Finished:
    """A scheduler Handle for a job that already ran."""

    exitcode = 0

    def join(self, timeout: float | None = None) -> None:
        pass

    def terminate(self) -> None:
        pass


def inline(store_url: str, job: Job) -> Finished:
    """Run a job in this process (a Scheduler's launch), so its logic is tested without fork()."""
    store = open_store(store_url)
    store.start_job(job.id, os.getpid())
    jobs.run(store, job.id)
    store.close()
    return Finished()


def republish(store: VersionStore, record: VersionRecord | None = None) -> int:
    """A new current version at the centre (version 1's parameters and model again, as a job writes one)."""
    record = record or store.read(1)
    return store.write({k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")}, record.files)
