"""Progress lines for long work on the command line: what is happening, and
that it still is (a heartbeat every few seconds while a step runs)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class ProgressPrinter:
    """A Progress sink printing '[  1.2s] stage: message' lines."""

    def __init__(self, stream: TextIO = sys.stderr, heartbeat: float = 5.0) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.heartbeat = heartbeat
        self._last = ("", "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, stage: str, fraction: float | None, message: str) -> None:
        pct = f" {fraction * 100:3.0f}%" if fraction is not None and fraction < 1 else ""
        self._last = ("", "") if fraction == 1.0 else (stage, message)
        self._print(f"{stage}:{pct} {message}")

    def _print(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - self.started:6.1f}s] {text}\n")
        self.stream.flush()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            stage, message = self._last
            if stage:
                self._print(f"{stage}: still working ({message})")

    def __enter__(self) -> ProgressPrinter:
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
