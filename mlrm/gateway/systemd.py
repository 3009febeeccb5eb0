"""A systemd unit that runs `mlrm up` for one gateway (`mlrm export systemd`).

Generated, not shipped as a static file, because what it must say comes from
the manifest and the install: the interpreter that has mlrm, the manifest's
absolute path, its root as working directory, and a stop timeout longer than
the supervisor's own (every ML service, then the training service, each up
to supervision.stop_timeout).

How `mlrm up` takes signals decides the rest: SIGTERM (or SIGINT) stops the
gateway in order, SIGHUP reloads the manifest (mlrm.gateway.cli). systemd
sends the stop signal to `mlrm up` alone (KillMode=mixed), which stops its
services itself; what is left after TimeoutStopSec gets SIGKILL.
"""

from __future__ import annotations

import math
import shlex
import sys

from mlrm.gateway.cli import RELOAD_SIGNAL, STOP_SIGNALS
from mlrm.gateway.manifest import Manifest

# `mlrm up` exits 2 on a manifest or config error: restarting cannot fix that.
CONFIG_ERROR_STATUS = 2
MARGIN_S = 10


def unit_name(manifest: Manifest) -> str:
    return f"mlrm-{manifest.name}.service"


def stop_timeout(manifest: Manifest) -> int:
    """Seconds systemd waits after SIGTERM: ML services, then the training service, each up to stop_timeout."""
    return math.ceil(2 * manifest.supervision.stop_timeout) + MARGIN_S


def _quote(value: str) -> str:
    """A command-line word as systemd reads it (its quoting is close to the shell's)."""
    return shlex.quote(value) if value else '""'


def unit(manifest: Manifest, manifest_arg: str, user: str, python: str | None = None) -> str:
    """The text of the unit file."""
    python = python or sys.executable
    stop, reload = STOP_SIGNALS[-1], RELOAD_SIGNAL
    start = " ".join(_quote(w) for w in (python, "-m", "mlrm", "up", str(manifest.path)))
    description = f"mlrm gateway {manifest.name}" + (f": {manifest.description}" if manifest.description else "")
    return f"""\
# {unit_name(manifest)}: written by `mlrm export systemd {manifest_arg}`.
# Export again after moving the install or changing supervision.stop_timeout (docs/deployment.md).
[Unit]
Description={description.replace("%", "%%")}
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User={user}
WorkingDirectory={manifest.root}
Environment=PYTHONUNBUFFERED=1
ExecStart={start}
# `mlrm up` reloads its manifest on {reload.name}; a manifest that no longer loads is refused and it runs on.
ExecReload=/bin/kill -{reload.name.removeprefix("SIG")} $MAINPID
# {stop.name} to `mlrm up` only: it stops the ML services, then the training service, letting requests finish.
KillSignal={stop.name}
KillMode=mixed
TimeoutStopSec={stop_timeout(manifest)}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus={CONFIG_ERROR_STATUS}
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""
