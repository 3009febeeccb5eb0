"""Which config sets of a gateway follow a central training service (`training.mode: remote`).

`mlrm up` runs the checks in one thread of its own process: one request per
config set and interval to the centre, whatever the number of gunicorn
workers, never inside a worker that serves predictions, and nothing heavy is
imported (a version is checked and written as bytes, never loaded here). The
ML services notice a new current version as they do after a local job.
After each check it writes `<data_dir>/following.json` (state.follow_file), which
`mlrm status` shows.

`mlrm follow CONFIG_SET...` runs the same checks alone, for a gateway that
`mlrm up` does not run: in a Kubernetes pod, `mlrm export kubernetes` puts it
beside each ML service of a remote-mode manifest, on the config sets' volume.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mlrm import logs
from mlrm.errors import MlrmError
from mlrm.gateway import state as gateway_state
from mlrm.gateway.commands import Plan
from mlrm.gateway.manifest import Manifest
from mlrm.training.follow import Follower, Following, Say, follower_of
from mlrm.training.remote import CA_FILE_ENV, TRAINING_SERVICE_ENV

COMPONENT = "follow"
FOLLOW_EXAMPLE = (
    "MLRM_TOKEN_FILE=secrets/line-7.token mlrm follow configs/pcb-inspection "
    "--training-url https://central.example.com:8100 --interval 5"
)


def followers(manifest: Manifest, plan: Plan, say: Say) -> list[Follower]:
    """A Follower for every ML service of the plan, when the manifest's training is remote."""
    if manifest.training.mode != "remote" or not plan.training_url:
        return []
    found = []
    for launch in plan.launches:
        # A process of several services (the manifest's `process`) follows each of its config sets.
        sets = launch.models or ([(launch.name, launch.config_set)] if launch.config_set else [])
        for label, config_set in sets if launch.kind == "ml" else []:
            try:
                found.append(follower_of(config_set, plan.training_url, plan.client_token))
            except (MlrmError, OSError, ValueError) as exc:
                say(f"{label}: does not follow {plan.training_url}: {exc}")
    return found


def following(manifest: Manifest, plan: Plan, event: Callable[[str, str], None]) -> Following | None:
    """The started checks of a gateway whose training is remote (event: the supervisor's, with a level);
    None for any other gateway."""
    if manifest.training.mode != "remote":
        return None

    def say(text: str) -> None:
        event(text, "INFO")

    def warn(text: str) -> None:
        event(text, "WARNING")

    file = gateway_state.follow_file(manifest.state_file)

    def write(report: list[dict[str, Any]]) -> None:
        gateway_state.write(file, {"url": plan.training_url, "followers": report})

    checks = Following(followers(manifest, plan, warn), manifest.training.follow_interval, say, warn, on_check=write)
    names = ", ".join(f.name for f in checks.followers) or "no config set"
    say(f"following {plan.training_url} for {names}: asking every {manifest.training.follow_interval:g}s")
    checks.start()
    return checks


def _followers(config_sets: list[str], url: str) -> list[Follower]:
    found = []
    for config_set in config_sets:
        try:
            found.append(follower_of(Path(config_set), url))
        except OSError as exc:
            raise MlrmError(
                f"{config_set}/service.yaml: cannot read it ({exc.strerror}). Fix: name a config set folder"
            ) from None
        except yaml.YAMLError as exc:
            raise MlrmError(f"{config_set}/service.yaml: not YAML ({exc}). Fix: `mlrm validate {config_set}`") from None
    return found


def cmd_follow(args: argparse.Namespace) -> int:
    url = args.training_url or os.environ.get(TRAINING_SERVICE_ENV)
    if not url:
        raise MlrmError(f"no training service to follow. Fix: pass --training-url URL, or set {TRAINING_SERVICE_ENV}")
    fmt = logs.log_format(args.log_format)

    def say(text: str, level: str = "INFO") -> None:
        print(logs.line(fmt, COMPONENT, level, text), file=sys.stderr if level != "INFO" else sys.stdout, flush=True)

    found = _followers(args.config_sets, url)
    if args.once:
        checks = Following(found, args.interval, say, warn=lambda text: None)
        failed = 0
        for due, follower in zip(checks._due, found):
            if checks.check(due):
                say(f"{follower.name}: {url} answers; version {due.report()['version']} is current here")
                continue
            failed += 1
            say(
                f"{follower.name}: {due.last_error}; {follower.store.root.parent} stays on version "
                f"{due.report()['version']}. Fix: check that the training service runs at {url} and is reachable "
                f"from here (its CA in {CA_FILE_ENV}, the client token in MLRM_TOKEN_FILE)",
                "ERROR",
            )
        return 1 if failed else 0
    stop = threading.Event()

    def on_signal(number: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    checks = Following(found, args.interval, say, lambda text: say(text, "WARNING"))
    say(f"following {url} for {', '.join(f.name for f in found)}: asking every {args.interval:g}s")
    checks.start()
    try:
        stop.wait()
    finally:
        checks.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    say("stopped")
    return 0


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds above 0, e.g. 5")
    return value


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `mlrm follow` to the command line."""
    s = add(
        "follow",
        "Keep config sets on the versions a central training service makes current, as `mlrm up` does for "
        "`training.mode: remote`, without running the services (e.g. beside them in a Kubernetes pod): ask "
        "GET /v1/services/NAME/current every --interval, fetch a new version, check every sha256 (and the "
        "signature when MLRM_VERIFY_KEY is set), make it current; services serving the sets switch to it live. "
        f"The client token comes from MLRM_TOKEN or MLRM_TOKEN_FILE, the CA of an https centre from {CA_FILE_ENV}. "
        "Runs until SIGTERM; --once checks once and exits 1 if a check failed. See docs/training-service.md.",
        f"{FOLLOW_EXAMPLE}\n  mlrm follow configs/pcb-inspection --training-url http://127.0.0.1:8100 --once",
        cmd_follow,
    )
    s.add_argument("config_sets", nargs="+", metavar="CONFIG_SET", help="config set folder(s) to keep current")
    s.add_argument(
        "--training-url",
        metavar="URL",
        help=f"the central training service (default: ${TRAINING_SERVICE_ENV}, as `mlrm up` sets it for its services)",
    )
    s.add_argument("--interval", type=_interval, default=5.0, metavar="S",
                   help="seconds between checks (default 5, as training.follow_interval); a centre that does not "
                   "answer is asked with a growing delay")  # fmt: skip
    s.add_argument("--once", action="store_true", help="check each set once, say what it found, and exit")
    logs.add_option(s)
