"""The `mlrm` command line. Every subcommand's --help says what it does and
shows an example; errors name the file, the key and the fix, never a
traceback (exit 2 for a bad config or bad arguments, 1 for a failed run)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mlrm import __version__, logs
from mlrm.credentials import CredentialsError, add_options
from mlrm.errors import ConfigError, DataError, FieldError, MlrmError, StateError

EPILOG = """\
A config set is a folder with a service.yaml. Start with:
  mlrm validate configs/pcb-inspection
  mlrm data pcb-inspection --rows 3000 --output pcb.csv
  mlrm train configs/pcb-inspection --data pcb.csv
  mlrm serve configs/pcb-inspection --port 8000
  curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' -d @request.json
"""

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}

# Modules that add subcommands: each has register(add), where
# add(name, help, example, handler) returns the new subparser. One line per
# feature here, so features never edit each other's commands.
EXTENSIONS: list[str] = [
    "mlrm.mqtt.cli",
    "training_service.cli",
    "mlrm.gateway.cli",
    "mlrm.gateway.export",
    "mlrm.gateway.following",
    "mlrm.tools.scaffold",
    "mlrm.credentials",
    "mlrm.training.migrate",
    "mlrm.training.samples_cli",
    "mlrm.tools.bench.cli",
]


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def _say(text: str) -> None:
    print(text, flush=True)


@command("schema")
def cmd_schema(args: argparse.Namespace) -> int:
    from mlrm.config import build_schema
    from mlrm.config.reference import HEADER, markdown

    if args.write:
        from mlrm.tools.scaffold import SCHEMA_DIR, write_schema

        if args.markdown or args.output:
            raise MlrmError("--write DIR puts the JSON Schema into DIR/.mlrm/; drop --markdown and --output")
        kind = "gateway" if args.gateway else "service"
        written = write_schema(Path(args.write), kind)
        _say(f"wrote {written}" if written else f"{Path(args.write) / SCHEMA_DIR / f'{kind}.schema.json'} is current")
        return 0
    schema = build_schema()
    if args.gateway:
        from mlrm.gateway.manifest import REFERENCE_HEADER
        from mlrm.gateway.manifest import build_schema as gateway_schema

        schema = gateway_schema()
    text = (
        markdown(schema, REFERENCE_HEADER if args.gateway else HEADER)
        if args.markdown
        else json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        _say(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


@command("validate")
def cmd_validate(args: argparse.Namespace) -> int:
    from mlrm.config import load_config_set

    failed = 0
    for path in args.paths:
        if Path(path).suffix in (".yaml", ".yml") and Path(path).name != "service.yaml":
            from mlrm.gateway.manifest import load_manifest  # a gateway manifest (services/*.yaml)

            try:
                manifest = load_manifest(path)
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                failed += 1
                continue
            _say(
                f"ok: {path}: gateway '{manifest.name}', {len(manifest.enabled())} services, training {manifest.training.mode}"
            )
            continue
        try:
            config = load_config_set(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        target = f"{config.target.kind} of '{config.target.name}'" if config.target else "anomaly detection"
        _say(f"ok: {path}: '{config.name}', {len(config.inputs)} inputs, {config.algorithm}, {target}")
    return 2 if failed else 0


@command("data")
def cmd_data(args: argparse.Namespace) -> int:
    from mlrm.tools.datasets import GENERATORS, to_csv

    rows = GENERATORS[args.name](rows=args.rows, seed=args.seed)
    text = to_csv(rows)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        _say(f"wrote {len(rows)} rows to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from mlrm.config import load_config_set
    from mlrm.training import csv_files, trainer
    from mlrm.training.progress import ProgressPrinter

    if args.remote:
        from mlrm.training.remote import train_remote

        return train_remote(args)
    if not args.data:
        raise DataError("--data FILE.csv is required (or --remote URL to train on a training service)")
    config = load_config_set(args.config_set)
    table = csv_files.read_file(args.data, config)
    for note in table.notes:
        print(note.at(args.data), file=sys.stderr)
    data = trainer.dataset(config, table.records, strings=True, invalid=table.invalid)
    _report_rejected(args.data, table.lines, data.rejected)
    if not data.accepted:
        raise DataError(csv_files.nothing_accepted(args.data, data.total))
    for label in trainer.absent_labels(config, table.records, data):
        print(trainer.absent_label_warning(label), file=sys.stderr)
    with ProgressPrinter() as progress:
        result = trainer.train(config, table.records, progress=progress, write=not args.dry_run, data=data)
    metric = config.metric
    unit = "windows" if "sequence" in config.raw else "rows"
    _say(f"trained '{config.name}' ({config.algorithm}) on {result.rows} {unit} in {result.timings['total_s']:.2f}s")
    for key, value in result.metrics.items():
        _say(f"  {key:<18} {value:.4f}{'   <- training.metric' if key == metric else ''}")
    if result.version is not None:
        _say(f"saved version {result.version} in {config.learned_dir}")
    else:
        _say("dry run: nothing saved")
    return 0


def _report_rejected(path: str, lines: list[int], errors: list[FieldError]) -> None:
    from mlrm.training import csv_files

    rows: dict[int, list[FieldError]] = {}
    for error in errors:  # pointers are /rows/<index>[/<column>]
        rows.setdefault(int(error.pointer.split("/")[2]), []).append(error)
    for i in sorted(rows)[: csv_files.SHOWN_ROWS]:
        for error in rows[i]:
            print(csv_files.rejected_message(path, lines[i], error.pointer, error.detail), file=sys.stderr)
    if len(rows) > csv_files.SHOWN_ROWS:
        print(csv_files.more_rejected(len(rows) - csv_files.SHOWN_ROWS), file=sys.stderr)


@command("versions")
def cmd_versions(args: argparse.Namespace) -> int:
    from mlrm.config import load_config_set
    from mlrm.storage.versions import VersionStore

    config = load_config_set(args.config_set)
    store = VersionStore(config.learned_dir)
    current = store.current()
    _say(f"{'':2}{'version':>7}  {'created':<25} {'rows':>7}  {config.metric}")
    for v in store.versions():
        p = store.parameters(v)
        mark = "*" if v == current else ""
        score = (p.get("metrics") or {}).get(config.metric)
        _say(f"{mark:2}{v:>7}  {p.get('created_at', ''):<25} {(p.get('data') or {}).get('rows', ''):>7}  "
             f"{'' if score is None else f'{score:.4f}'}")  # fmt: skip
    if current is None:
        _say(f"no version yet: mlrm train {args.config_set} --data FILE.csv")
    return 0


@command("rollback")
def cmd_rollback(args: argparse.Namespace) -> int:
    from mlrm.config import load_config_set
    from mlrm.storage import audit
    from mlrm.storage.versions import VersionStore
    from training_service.core import refused_by_gate

    config = load_config_set(args.config_set)
    store = VersionStore(config.learned_dir)
    before = store.current()
    refused = refused_by_gate(store, args.to) if args.to in store.versions() else None
    if refused is not None and not args.force:
        raise DataError(
            f"version {args.to} was refused by the promotion gate ({refused}). To make it current anyway: "
            f"mlrm rollback {args.config_set} --to {args.to} --force (recorded in {config.learned_dir / audit.AUDIT_FILE})"
        )
    store.set_current(args.to)
    audit.record(
        config.learned_dir, f"cli:{os.environ.get('USER') or os.getuid()}", f"mlrm rollback --to {args.to}", "local",
        previous=before, forced=refused is not None,
    )  # fmt: skip
    _say(f"'{config.name}': current version is now {args.to} (was {before}); running services switch within seconds")
    return 0


@command("serve")
def cmd_serve(args: argparse.Namespace) -> int:
    from mlrm.config import ServiceConfig, load_config_set
    from mlrm.core.service_set import ServiceSet, expand
    from mlrm.credentials import serving_tokens

    # Workers are the parallelism; an OpenMP pool started in the master (the
    # preload smoke prediction) does not survive gunicorn's fork and can hang a
    # worker. Set before scikit-learn loads libgomp.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    folders = expand(args.config_sets)
    # Fail fast, before gunicorn starts: one set must load; of several, one at least (the others answer 503).
    served: ServiceConfig | ServiceSet = load_config_set(folders[0]) if len(folders) == 1 else ServiceSet(folders)
    if isinstance(served, ServiceSet):
        served.require_one()
        for item in served.unusable.values():
            print(f"mlrm serve: config set '{item.name}' does not load; it answers 503 until fixed, the others "
                  f"serve:\n  {item.reason}\n  Fix: {item.fix}", file=sys.stderr, flush=True)  # fmt: skip
    configs = [served] if isinstance(served, ServiceConfig) else [s.config for s in served.services.values()]
    names = [c.name for c in configs]
    chosen = args.mqtt_set or []  # sets by name or folder

    def picked(config: ServiceConfig) -> bool:
        return any(x == config.name or Path(x).resolve() == config.path for x in chosen)

    unknown = [x for x in chosen if not any(x == c.name or Path(x).resolve() == c.path for c in configs)]
    if unknown or (args.mqtt_set and not args.mqtt_broker):
        why = f"no config set named {unknown[0]!r} is served (served: {', '.join(names)})" if unknown else ""
        print(
            f"mlrm serve: --mqtt-set: {why or 'needs --mqtt-broker URL (the broker those sets use)'}", file=sys.stderr
        )
        return 2
    tokens = serving_tokens("serve", args.host, args.tokens, args.insecure)
    # Before prometheus_client is first imported (by mlrm.rest), or workers' metrics are lost.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlrm-metrics-")
    # gunicorn and the MQTT bridges read it (mlrm/logs.py): one format in every process of the service.
    os.environ[logs.ENV] = logs.log_format(args.log_format)
    from mlrm.rest import create_app
    from mlrm.rest.server import check_tls, serve

    check_tls(args.certfile, args.keyfile)  # before the MQTT bridge starts, so a bad pair stops everything
    url = f"{'https' if args.certfile else 'http'}://{args.host}:{args.port}"

    def ready() -> None:
        shown = (
            f"'{names[0]}'" if len(folders) == 1 else f"{len(names)} models ({', '.join(names)}) at /v1/models/NAME/…"
        )
        logging.getLogger("mlrm.serve").info("%s ready at %s (try %s/v2/health/ready)", shown, url, url)

    if args.mqtt_broker:
        from mlrm.config.mqtt_checks import parse_broker

        try:
            parse_broker(args.mqtt_broker)  # a bad URL stops start-up here, with the fix
        except ValueError as exc:
            print(f"mlrm serve: --mqtt-broker: {exc}", file=sys.stderr)
            return 2
    bridges = {}
    for config in configs:
        broker = args.mqtt_broker if args.mqtt_broker and (not chosen or picked(config)) else None
        if "mqtt" in config.raw or broker:
            # One MQTT bridge process per set beside gunicorn, whatever --workers is (why: mlrm/mqtt/bridge_process.py).
            from mlrm.mqtt.bridge_process import BridgeProcess

            bridges[config.name] = BridgeProcess.start(config.path, args.log_level, broker)
    status = {name: bridge.status_path for name, bridge in bridges.items()}
    try:
        serve(
            lambda: create_app(served, mqtt_status=status, tokens=tokens),
            host=args.host,
            port=args.port,
            workers=args.workers,
            name=names[0] if len(folders) == 1 else "+".join(names),
            log_level=args.log_level,
            access_log=args.access_log,
            on_ready=ready,
            certfile=args.certfile,
            keyfile=args.keyfile,
        )
    finally:
        for bridge in bridges.values():
            bridge.stop()
    return 0


class _Generators:
    """The names `mlrm data` takes, read from mlrm.tools.datasets (and so numpy)
    only when `mlrm data` runs or prints help, not on every command."""

    def _names(self) -> list[str]:
        from mlrm.tools.datasets import GENERATORS

        return list(GENERATORS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlrm",
        description="Serve, train and update machine-learning models from YAML config sets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mlrm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, example: str, handler: Command | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name, help=help, description=help, epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        sp.set_defaults(handler=handler or COMMANDS[name])
        return sp

    s = add(
        "schema", "Print the JSON Schema of service.yaml (for editors and CI).", "mlrm schema > service.schema.json"
    )
    s.add_argument("--output", "-o", help="write to this file instead of stdout")
    s.add_argument("--markdown", action="store_true", help="print the config reference as Markdown instead")
    s.add_argument("--gateway", action="store_true", help="the gateway manifest's schema (services/*.yaml) instead")
    s.add_argument("--write", metavar="DIR", help="write it to DIR/.mlrm/, where the first line of every service.yaml "
                   "(or manifest) in a folder of DIR points editors (../.mlrm/service.schema.json)")  # fmt: skip

    s = add("validate", "Check config sets; every problem names file, line, key and fix.", "mlrm validate configs/*")
    s.add_argument(
        "paths", nargs="+", metavar="CONFIG_SET", help="config set folder(s), or gateway manifests (services/*.yaml)"
    )

    s = add("data", "Write sample data as CSV (synthetic PCB readings, rooms' air, a pump motor; or real data a package ships).",
            "mlrm data pcb-inspection --rows 3000 --output pcb.csv")  # fmt: skip
    s.add_argument("name", choices=_Generators(), metavar="NAME", help="one of: %(choices)s")  # type: ignore[arg-type]
    s.add_argument("--rows", type=int, default=2000, help="rows to generate (default 2000; real data: all)")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--output", "-o", help="write to this file instead of stdout")

    s = add("train", "Train on a CSV file, evaluate on a holdout, save a new version atomically.",
            "mlrm train configs/pcb-inspection --data pcb.csv")  # fmt: skip
    s.add_argument("config_set", metavar="CONFIG_SET", help="config set folder (with --remote: or a service name)")
    s.add_argument("--data", metavar="FILE.csv", help="CSV with a header: the inputs and the target")
    s.add_argument("--remote", metavar="URL",
                   help="train on this training service instead (posts --data first, if given), and follow the job")  # fmt: skip
    s.add_argument("--dry-run", action="store_true", help="train and evaluate, but save nothing")

    s = add("versions", "List the stored versions of a config set's learned state (* = current).",
            "mlrm versions configs/pcb-inspection")  # fmt: skip
    s.add_argument("config_set", metavar="CONFIG_SET")

    s = add("rollback", "Make an earlier stored version current; running services switch to it live.",
            "mlrm rollback configs/pcb-inspection --to 2")  # fmt: skip
    s.add_argument("config_set", metavar="CONFIG_SET")
    s.add_argument("--to", type=int, required=True, metavar="VERSION")
    s.add_argument("--force", action="store_true",
                   help="make current a version the promotion gate refused (recorded in learned/audit.jsonl)")  # fmt: skip

    s = add("serve", "Serve one config set, or several in one gunicorn (each at /v1/models/NAME/...), over REST; "
            "reloads new versions live.",
            "mlrm serve configs/pcb-inspection --port 8000 --workers 2\n  mlrm serve configs/pcb-inspection "
            "configs/air-quality --port 8000   # or: mlrm serve configs/ (every set in the folder)")  # fmt: skip
    s.add_argument("config_sets", nargs="+", metavar="CONFIG_SET",
                   help="config set folder(s); a folder without a service.yaml stands for every set in its "
                   "subfolders. One set: also at /v1/predict. Several: a set that does not load answers 503, "
                   "the others serve")  # fmt: skip
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1,
                   help="gunicorn worker processes (default 1): sync on loopback; gevent on any other address, so "
                   "slow or idle connections cannot hold a worker")  # fmt: skip
    s.add_argument("--certfile", metavar="PEM", help="serve HTTPS with this certificate (chain); needs --keyfile")
    s.add_argument("--keyfile", metavar="PEM", help="the private key of --certfile (unencrypted PEM)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--access-log", action="store_true", help="log every request to stderr")
    logs.add_option(s)
    s.add_argument(
        "--mqtt-broker", metavar="URL",
        help="also take predictions over MQTT from this broker (mqtt://host:1883); overrides mqtt.broker "
        "in service.yaml, or uses the default topics mlrm/NAME/predict -> mlrm/NAME/predictions",
    )  # fmt: skip
    s.add_argument("--mqtt-set", action="append", metavar="NAME",
                   help="with --mqtt-broker and several sets: only these sets (by name or folder; repeat it) take MQTT from "
                   "that broker (default: every set); a set with an mqtt section always does, from its own broker")  # fmt: skip
    add_options(s)
    for module in EXTENSIONS:
        importlib.import_module(module).register(add)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (DataError, StateError, CredentialsError) as exc:
        print(f"mlrm {args.command}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, StateError) else 2
    except MlrmError as exc:
        print(f"mlrm {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> Any:
    sys.exit(main())
