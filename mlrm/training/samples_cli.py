"""`mlrm samples list|quarantine|release|delete SERVICE --remote URL`: review stored samples.

A thin front of TrainingServiceClient: the training service checks the
selector and records every change in the config set's audit log.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from mlrm.training.remote import TrainingServiceClient, service_name

ACTIONS = {"quarantine": "quarantined", "release": "released", "delete": "deleted"}


def _selector(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {"ids": args.ids, "batch": args.batch, "since": args.since, "until": args.before, "label": args.label}
    out: dict[str, Any] = {k: v for k, v in chosen.items() if v is not None}
    if args.all:
        out["all"] = True
    return out


def _line(sample: dict[str, Any]) -> str:
    target = sample["label"] if sample["label"] is not None else sample["value"]
    held = "  quarantined" if sample["quarantined"] else ""
    record = json.dumps(sample["record"], separators=(",", ":"))
    return f"#{sample['id']}  batch {sample['batch']}  {sample['received_at']}  {target}{held}  {record}"


def cmd_samples(args: argparse.Namespace) -> int:
    """List, quarantine, release or delete the stored samples of one service."""
    name = service_name(args.service)
    with TrainingServiceClient(args.remote) as client:
        if args.action == "list":
            query = {**_selector(args), "state": args.state}
            shown, after = 0, 0
            while shown < args.limit:
                page = client.list_samples(name, {**query, "after": after, "limit": min(1000, args.limit - shown)})
                for sample in page["samples"]:
                    print(_line(sample))
                shown += len(page["samples"])
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            print(f"{shown} sample(s)", file=sys.stderr)
            return 0
        done = client.change_samples(name, args.action, _selector(args))
        span = f" (#{done['first_id']}-#{done['last_id']})" if done["count"] else ""
        print(f"{ACTIONS[args.action]} {done['count']} sample(s) of {name}{span}")
    return 0


def register(add: Callable[..., Any]) -> None:
    """Add `mlrm samples` to the CLI."""
    s = add(
        "samples",
        "Review a training service's stored samples: list them, quarantine (kept, never trained on), release "
        "or delete them by id range, batch, time or label. Needs an admin token (MLRM_TOKEN); changes are audited.",
        "mlrm samples quarantine breast-cancer --remote http://127.0.0.1:8100 --ids 120-130",
        cmd_samples,
    )
    s.add_argument("action", choices=["list", *ACTIONS], help="what to do with the selected samples")
    s.add_argument("service", metavar="SERVICE", help="the service name (or its config set folder)")
    s.add_argument("--remote", required=True, metavar="URL", help="the training service, e.g. http://127.0.0.1:8100")
    s.add_argument("--ids", metavar="A-B", help="sample ids, one (12) or a range (10-20)")
    s.add_argument("--batch", type=int, metavar="N", help="the batch number an ingest answer reported")
    s.add_argument("--since", metavar="TIME", help="received at or after (ISO 8601, e.g. 2025-05-01T10:00:00Z)")
    s.add_argument("--before", metavar="TIME", help="received before (ISO 8601)")
    s.add_argument("--label", metavar="X", help="with this label")
    s.add_argument("--all", action="store_true", help="every sample of the service (changes need a selector or this)")
    s.add_argument("--state", default="all", choices=["all", "active", "quarantined"], help="list: which samples")
    s.add_argument("--limit", type=int, default=100, help="list: at most this many (default 100)")
