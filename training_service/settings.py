"""How one training service runs: where the config sets and the store are,
what it listens on, and its limits. Built from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8100
STORE_FILE = "training.sqlite"


@dataclass(frozen=True)
class Settings:
    """Everything the API, the scheduler and jobs need to agree on."""

    config_root: Path
    store_url: str = ""
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 2
    # A post larger than this is refused with 413 before it is read.
    max_body_bytes: int = 16 * 1024 * 1024
    # Records in one post; more is refused with 413 (split the batch).
    max_records: int = 10_000
    # Ingest answers 507 while the store's disk has less free than this. 100 MB: a few of the largest posts
    # (16 MiB, plus WAL and index growth) and a model version still fit after the refusals start, and a fixed
    # size, unlike a share, does not shut out most of a small SD card or waste most of a large disk.
    min_free_bytes: int = 100_000_000
    # Seconds between the scheduler's looks at triggers and jobs.
    poll_interval: float = 0.5
    # A job whose process died (kill, crash, restart) is resumed this many times in all.
    max_attempts: int = 3
    log_level: str = "info"
    # API tokens with scopes (mlrm/credentials.py); None: every route open (loopback only, unless --insecure).
    tokens_file: Path | None = None

    def __post_init__(self) -> None:
        root = Path(self.config_root).resolve()
        object.__setattr__(self, "config_root", root)
        if not self.store_url:
            # The embedded default: a SQLite file beside the config sets.
            object.__setattr__(self, "store_url", f"sqlite:///{root / STORE_FILE}")

    def scheduler_args(self) -> list[str]:
        """Command-line arguments that give the scheduler process the same settings."""
        return [
            "--config-root", str(self.config_root), "--store", self.store_url,
            "--poll-interval", str(self.poll_interval), "--max-attempts", str(self.max_attempts),
            "--log-level", self.log_level,
        ]  # fmt: skip
