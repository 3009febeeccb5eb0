"""Start a service so that it stops when `mlrm up` dies, even by SIGKILL.

`python -m mlrm.gateway.launcher PARENT_PID -- ARGV...` asks Linux to send
this process SIGTERM when its parent dies (PR_SET_PDEATHSIG survives exec),
then becomes ARGV. A gunicorn master that gets SIGTERM stops gracefully, so
a killed supervisor leaves no orphan services holding ports. Elsewhere than
Linux it just runs ARGV.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m mlrm.gateway.launcher PARENT_PID -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), argv[2:]
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 1
    os.execvp(command[0], command)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
