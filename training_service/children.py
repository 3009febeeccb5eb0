"""The helper processes `mlrm training-service` forks beside gunicorn (scheduler, MQTT subscriber).

Forked, not exec'd: the parent is single-threaded at that point and has mlrm,
numpy and Flask imported (as gunicorn's preload has), so a child is ready at
once instead of importing it all again. Not scikit-learn: no process of the
training service at rest imports it (training_service.services).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable


def fork_child(main: Callable[[], int]) -> int:
    """Run main() in a forked child that never returns into the caller; the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = main()
        except BaseException:  # noqa: BLE001 (the child must never return into the CLI)
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def stop_child(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a forked child and wait, unless it is gone already (gunicorn reaps any child that exits)."""
    deadline = time.monotonic() + timeout
    signalled = False
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # already reaped: the pid may belong to someone else now, so never signal it
        if done:
            return
        if not signalled:
            os.kill(pid, signal.SIGTERM)
            signalled = True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
