"""`mlrm training-service`: the API under gunicorn plus the scheduler process."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrm import logs
from mlrm.credentials import add_options
from training_service.children import fork_child, stop_child
from training_service.settings import DEFAULT_PORT, STORE_FILE, Settings

log = logging.getLogger("training_service")
# The component of its log lines (mlrm/logs.py), and gunicorn's proc_name: mlrm:training-service.
NAME = "training-service"


def cmd_training_service(args: argparse.Namespace) -> int:
    """Check every config set and the store, start the scheduler, then serve the API."""
    from mlrm.credentials import serving_tokens
    from training_service.services import ConfigRoot
    from training_service.store import redact
    from training_service.store_url import open_store

    settings = Settings(
        config_root=Path(args.config_root), store_url=args.store, host=args.host, port=args.port,
        workers=args.workers, max_body_bytes=args.max_body_bytes, max_records=args.max_records,
        poll_interval=args.poll_interval, log_level=args.log_level, min_free_bytes=args.min_free_bytes,
        tokens_file=serving_tokens("training-service", args.host, args.tokens, args.insecure),
    )  # fmt: skip
    log_format = logs.log_format(args.log_format)
    # Before prometheus_client is first imported (mlrm.rest.server brings it): every process of this
    # service (API workers, scheduler, job processes, MQTT subscriber) then writes its metrics there.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlrm-metrics-")
    try:
        from mlrm.rest.server import check_tls

        check_tls(args.certfile, args.keyfile)  # before the store is migrated or anything is forked
        services = ConfigRoot(settings.config_root)  # an unusable set is reported (degraded), not fatal
        services.require_one()  # ...unless none is usable: then fail fast, before anything starts
        store = open_store(settings.store_url)
        store.migrate()
        # A damaged file still opens and takes writes; only a check finds it. Started anyway, so probes see it red.
        damage = store.check()
        store.close()
    except BaseException:  # nothing will serve: leave neither the folder nor the setting behind
        shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)
        raise
    # One log format in every process (mlrm/logs.py): set before the scheduler and the subscriber are forked.
    os.environ[logs.ENV] = log_format
    logs.configure(NAME, log_format, args.log_level)
    from mlrm.rest.server import serve
    from training_service import mqtt_samples
    from training_service.api import create_app
    from training_service.core import STORE_FIX

    subscriber = mqtt_samples.start(settings, services)  # None unless a config set has mqtt.topics.training_in
    scheduler = _start_scheduler(settings)
    url = f"{'https' if args.certfile else 'http'}://{settings.host}:{settings.port}"

    def ready() -> None:
        names = ", ".join(services.names()) or "no usable config set"
        store_url = redact(settings.store_url)
        log.info("training service for %s ready at %s (store %s)", names, url, store_url)
        for item in services.unavailable.values():
            log.warning("degraded: config set '%s' is unavailable: %s. Fix: %s", item.name, item.reason, item.fix)
        if damage is not None:
            log.error("UNUSABLE: the sample store failed its check (%s); GET /v1/health answers 503 "
                      "and ingest is refused. Fix: %s", damage, STORE_FIX)  # fmt: skip

    try:
        serve(
            lambda: create_app(settings),
            host=settings.host, port=settings.port, workers=settings.workers, name=NAME,
            log_level=args.log_level, access_log=args.access_log, on_ready=ready,
            certfile=args.certfile, keyfile=args.keyfile,
        )  # fmt: skip
    finally:
        stop_child(scheduler)
        if subscriber is not None:
            stop_child(subscriber)
    return 0


def _start_scheduler(settings: Settings) -> int:
    """Fork the scheduler: its own process, so triggers are checked once however many API workers run."""
    from training_service.scheduler import main as scheduler_main

    return fork_child(lambda: scheduler_main([*settings.scheduler_args(), "--exit-with-parent"]))


def register(add: Callable[..., Any]) -> None:
    """Add `mlrm training-service` to the CLI."""
    s = add(
        "training-service",
        "Run the training service: store samples posted over REST (and, for config sets with "
        "mqtt.topics.training_in, published over MQTT), retrain on triggers, write better versions back. "
        "A config set it cannot use is reported (GET /v1/health: degraded), not fatal.",
        "mlrm training-service --config-root configs/ --port 8100",
        cmd_training_service,
    )
    s.add_argument("--config-root", required=True, metavar="DIR", help="folder whose sub-folders are config sets")
    s.add_argument("--store", default="", metavar="URL",
                   help=f"sqlite:///path/to/file.sqlite (default: DIR/{STORE_FILE}, WAL, synchronous=FULL), or "
                   "postgresql://USER[:PASSWORD]@HOST:5432/DATABASE[?schema=NAME] (needs pip install "
                   "'mlrm[postgresql]'), which several instances can share: one scheduler leads, another takes "
                   "over within seconds of its end")  # fmt: skip
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--workers", type=int, default=2,
                   help="gunicorn workers for the API (default 2): sync on loopback; gevent on any other address, "
                   "so slow or idle connections cannot hold a worker")  # fmt: skip
    s.add_argument("--certfile", metavar="PEM", help="serve HTTPS with this certificate (chain); needs --keyfile")
    s.add_argument("--keyfile", metavar="PEM", help="the private key of --certfile (unencrypted PEM)")
    s.add_argument(
        "--max-body-bytes", type=int, default=Settings.max_body_bytes, help="largest accepted post (413 above)"
    )
    s.add_argument("--max-records", type=int, default=Settings.max_records, help="most records in one post (413 above)")
    s.add_argument("--min-free-bytes", type=int, default=Settings.min_free_bytes, metavar="N",
                   help="ingest answers 507 while the store's disk has less free (default 100000000: room for a few "
                   "of the largest posts and a model version once refusals start)")  # fmt: skip
    s.add_argument("--poll-interval", type=float, default=Settings.poll_interval,
                   help="seconds between the scheduler's trigger checks (default 0.5)")  # fmt: skip
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--access-log", action="store_true", help="log every request to stderr")
    logs.add_option(s)
    add_options(s)
