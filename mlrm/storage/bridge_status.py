"""The MQTT bridge's status file: written by the bridge, read by REST /v1/mqtt.

The bridge is another process than the gunicorn workers, so it shares its
state the way it shares metrics: through a file. It rewrites the file at
least every second; a file older than STALE_AFTER seconds means the bridge
is hung or gone. Imports neither paho nor Flask.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STALE_AFTER = 10.0


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace the status file atomically (readers never see half a file)."""
    body = {**status, "pid": os.getpid(), "updated_at": time.time()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path | None, *, now: float | None = None) -> tuple[dict[str, Any], int]:
    """(body, HTTP status) for /v1/mqtt: 200 when connected, else 503 with the state named."""
    if path is None:
        return {"state": "not-running", "connected": False,
                "detail": "no MQTT bridge runs beside this app; `mlrm serve` starts one"}, 503  # fmt: skip
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"state": "starting", "connected": False}, 503
    except (OSError, ValueError) as exc:
        return {"state": "unknown", "connected": False, "detail": f"cannot read the bridge status: {exc}"}, 503
    age = (now or time.time()) - float(body.get("updated_at", 0))
    if age > STALE_AFTER:
        body.update(state="stale", connected=False,
                    detail=f"the bridge has not reported for {age:.0f} s; it is restarting or hung")  # fmt: skip
        return body, 503
    body["state"] = "connected" if body.get("connected") else "disconnected"
    return body, 200 if body.get("connected") else 503
