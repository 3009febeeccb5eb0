"""The audit log of a config set: every admin action, who, what, when and from where.

One JSON object a line in learned/audit.jsonl, beside the versions it guards,
so the ML service, the training service and the CLI write one log per config
set, and it travels with the versions. Each line is also logged (mlrm.audit).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"

log = logging.getLogger("mlrm.audit")
if not log.handlers:
    # gunicorn configures its own loggers, not the root: without this, audit lines would go nowhere.
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s mlrm.audit %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def record(learned_dir: Path, who: str, what: str, where: str, **details: Any) -> dict[str, Any]:
    """Append one action to learned_dir/audit.jsonl and the log; the entry written."""
    entry = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who, "what": what, "from": where, **details,
    }  # fmt: skip
    line = json.dumps(entry, sort_keys=False, default=str)
    learned_dir.mkdir(parents=True, exist_ok=True)
    # One write() of a line opened O_APPEND: lines from several workers never interleave.
    fd = os.open(learned_dir / AUDIT_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("%s", line)
    return entry


def entries(learned_dir: Path) -> list[dict[str, Any]]:
    """Every recorded action, oldest first."""
    try:
        text = (learned_dir / AUDIT_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
