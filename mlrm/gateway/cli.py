"""`mlrm up` and `mlrm status`: one command for every service of a gateway."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrm import logs
from mlrm.errors import ConfigError, MlrmError
from mlrm.gateway import state as gateway_state
from mlrm.storage.sqlite import FileLock, try_lock

if TYPE_CHECKING:
    from mlrm.gateway.commands import Plan

NOT_RUNNING = 3  # as `systemctl status`: the program is not running
# How `mlrm up` is stopped (in order, gracefully) and told to reload its manifest; the systemd unit says the same.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELOAD_SIGNAL = signal.SIGHUP


def _say(text: str) -> None:
    print(text, flush=True)


def _shown(path: Path) -> str:
    """A path as short as it can be said from here."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _lock(data_dir: Path) -> FileLock | None:
    """Hold <data_dir>/gateway.lock for this process's life; None if another `mlrm up` holds it."""
    return try_lock(data_dir / "gateway.lock")


def _plan_in_child(manifest_path: str, *, check_ports: bool = True) -> Plan:
    """Check the manifest with every config set and plan the launches in a
    forked child, which sends the plan (or the problems) back through a pipe.

    Checking config sets imports scikit-learn and friends (~90 MB); the
    supervisor runs for months, so that memory must not stay in it.
    """
    from mlrm.gateway.commands import plan
    from mlrm.gateway.manifest import load_manifest
    from mlrm.gateway.workspace import prepare

    read, write = os.pipe()
    # Forked before the supervisor starts threads, and again on a reload while its log pumps run:
    # the child only plans and writes to the pipe, so no lock a thread held can stop it.
    pid = os.fork()
    if pid == 0:
        os.close(read)
        result: Any
        try:
            # Config sets are not loaded here: a set that does not load fails alone (`mlrm serve`
            # exits 2, and the supervisor marks it failed) instead of keeping the others from starting.
            manifest = load_manifest(manifest_path, config_sets=False)
            manifest.check_folders()
            result = plan(prepare(manifest), check_ports=check_ports)
        except ConfigError as exc:
            result = exc.problems
        except BaseException as exc:  # noqa: BLE001 (reported by the parent)
            result = f"{type(exc).__name__}: {exc}"
        with os.fdopen(write, "wb") as fh:
            pickle.dump(result, fh)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    result = pickle.loads(data) if data else "the checking process died"
    if isinstance(result, list):
        raise ConfigError(result)
    if isinstance(result, str):
        raise MlrmError(result)
    return result  # type: ignore[no-any-return]


def _print_table(state: dict[str, Any], live: bool = True) -> None:
    _say(gateway_state.table(gateway_state.rows(state, live=live)))


def _say_dashboard(state: dict[str, Any]) -> None:
    """Where the gateway's dashboard is, when the manifest has one (docs/dashboard.md)."""
    for entry in state["services"]:
        if entry["kind"] == "dashboard":
            _say(f"dashboard: {entry['url']}/")


def cmd_up(args: argparse.Namespace) -> int:
    from mlrm.gateway.commands import plan
    from mlrm.gateway.following import followers, following
    from mlrm.gateway.manifest import load_manifest
    from mlrm.gateway.supervisor import Supervisor
    from mlrm.training.follow import Following

    # Where the lock is needs the manifest, not its config sets: a second
    # `mlrm up` is refused before the slower checks.
    manifest = load_manifest(args.manifest, config_sets=args.check)
    if args.check:
        from mlrm.gateway.checks import start_checks

        steps = plan(manifest, check_ports=False)
        _say(f"ok: {args.manifest}: gateway '{manifest.name}', {len(steps.launches)} process(es) to start:")
        for launch in steps.launches:
            _say(f"  {launch.name:<20} {launch.url:<24} {' '.join(launch.argv)}")
        for name, reason in steps.skipped.items():
            _say(f"  {name:<20} skipped: {reason}")
        for warning in start_checks(manifest):
            _say(f"warning: {warning}")
        return 0
    # Every service inherits it (the plan copies this environment): one log format in the whole gateway.
    # --log-format, else the manifest's log_format, else $MLRM_LOG_FORMAT, else text.
    written = manifest.log_format if ("log_format",) in manifest.lines else None  # not the schema's default
    os.environ[logs.ENV] = log_format = logs.log_format(args.log_format or written)
    lock = _lock(manifest.data_dir)
    if lock is None:
        running = gateway_state.read(manifest.state_file) or {}
        print(
            f"mlrm up: gateway '{manifest.name}' is already running (pid {running.get('pid', '?')}). "
            f"See it with: mlrm status {args.manifest}",
            file=sys.stderr,
        )
        return 1
    steps = _plan_in_child(args.manifest)
    signals: list[int] = []
    reloads: list[int] = []

    def on_signal(number: int, frame: Any) -> None:
        signals.append(number)
        if len(signals) == 1:
            _say(f"\nmlrm up: {signal.Signals(number).name}: stopping the gateway (again to stop at once)")

    def on_hangup(number: int, frame: Any) -> None:
        reloads.append(number)  # as daemons do: SIGHUP reloads, it does not stop

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    previous[RELOAD_SIGNAL] = signal.signal(RELOAD_SIGNAL, on_hangup)
    checks: Following | None = None  # training.mode: remote: the config sets follow the centre's versions
    supervisor = Supervisor(manifest, steps, say=_say, should_stop=lambda: bool(signals), log_format=log_format)

    def replan() -> Plan | None:
        if not reloads:
            return None
        reloads.clear()
        supervisor.event(f"SIGHUP: reloading {args.manifest}")
        try:
            fresh = _plan_in_child(args.manifest, check_ports=False)
        except MlrmError as exc:
            supervisor.event(f"reload refused, the gateway runs on as it was: {exc}", "WARNING")
            return None
        if checks is not None:
            checks.update(followers(manifest, fresh, supervisor.event))
        return fresh

    _say(f"mlrm up: gateway '{manifest.name}' from {args.manifest}; logs in {_shown(manifest.log_dir)}/")
    try:
        supervisor.start()
        if not signals:
            _say("")
            _print_table(supervisor.state())
            _say("")
            if steps.training_url:
                _say(f"training data goes to {steps.training_url}")
            _say_dashboard(supervisor.state())
            _say(
                f"status: mlrm status {args.manifest}   stop: Ctrl-C (or SIGTERM to pid {os.getpid()})   "
                f"reload: kill -HUP {os.getpid()}"
            )
            checks = following(manifest, steps, supervisor.event)
            supervisor.run(replan)
    finally:
        if checks is not None:
            checks.stop()
        supervisor.stop(force=lambda: len(signals) > 1)
        manifest.state_file.unlink(missing_ok=True)
        gateway_state.follow_file(manifest.state_file).unlink(missing_ok=True)
        for number, handler in previous.items():
            signal.signal(number, handler)
        lock.release()
    _say(f"mlrm up: gateway '{manifest.name}' stopped")
    return 0


def _running(manifest_path: str) -> tuple[str, dict[str, Any] | None]:
    from mlrm.gateway.manifest import load_manifest

    manifest = load_manifest(manifest_path, config_sets=False)
    found = gateway_state.read(manifest.state_file)
    if found is None or not gateway_state.alive(found.get("pid")):
        return manifest.name, None
    found["following"] = gateway_state.read_following(manifest.state_file)  # training.mode: remote
    return manifest.name, found


def cmd_status(args: argparse.Namespace) -> int:
    manifests = [args.manifest] if args.manifest else sorted(str(p) for p in Path("services").glob("*.y*ml"))
    if not manifests:
        print(
            "mlrm status: no manifest given and no services/*.yaml here. Pass one: mlrm status services/demo.yaml",
            file=sys.stderr,
        )
        return NOT_RUNNING
    shown = 0
    states = {}
    for path in manifests:
        name, found = _running(path)
        if found is None:
            if args.manifest:
                _say(f"gateway '{name}' is not running. Start it with: mlrm up {path}")
            continue
        states[path] = found
        if args.json:
            continue
        if shown:
            _say("")
        _say(f"gateway '{found['gateway']}' (pid {found['pid']}, up since {found['started_at'][:19]}, {path})")
        _print_table(found)
        for line in gateway_state.following_lines(found):
            _say(line)
        if found.get("training_url"):
            _say(f"training data goes to {found['training_url']}")
        _say_dashboard(found)
        shown += 1
    if args.json:
        for found in states.values():
            asker = gateway_state.Asker.of(found)
            for entry in found["services"]:
                entry_rows = gateway_state.entry_rows(entry, asker=asker)
                # A process of several services: each service's own version and readiness, under models.
                for item, row in zip(entry.get("models") or [entry], entry_rows):
                    item["version"], item["ready"], item["reason"] = row.version, row.ready, row.note or None
        _say(json.dumps(states, indent=2))
    elif not states and not args.manifest:
        _say(f"no gateway is running from {', '.join(manifests)}. Start one with: mlrm up {manifests[0]}")
    return 0 if states else NOT_RUNNING


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `mlrm up` and `mlrm status` to the command line."""
    s = add(
        "up",
        "Start every service of a gateway manifest, supervise them (restart on crash; a config error is "
        "marked failed, not restarted), stop all on Ctrl-C, reload the manifest on SIGHUP.",
        "mlrm up services/demo.yaml",
        cmd_up,
    )
    s.add_argument("manifest", metavar="MANIFEST", help="gateway manifest, e.g. services/demo.yaml")
    s.add_argument(
        "--check",
        action="store_true",
        help="validate the manifest and its config sets (exit 2 on a problem), show the plan, warn about what "
        "would start not ready or degraded; start nothing",
    )
    logs.add_option(s, ", for mlrm up and every service it starts")
    s = add(
        "status",
        "Show the services of a running gateway: URL, model version, ready, restarts (exit 3: not running).",
        "mlrm status services/demo.yaml",
        cmd_status,
    )
    s.add_argument(
        "manifest", nargs="?", metavar="MANIFEST", help="gateway manifest (default: every services/*.yaml here)"
    )
    s.add_argument("--json", action="store_true", help="print the state, with live probes, as JSON")
