"""Run an app factory under gunicorn (model preloaded; sync or gevent workers).

Bound to loopback, sync workers: scikit-learn's forests re-apply warning filters
per tree in predict, which races under threaded workers (the estimators mlrm
does not compile still call it), and a keep-alive gthread worker answered no
faster on one core (2,378 against 2,351 requests/s for a constant route).
Reachable beyond loopback, gevent workers: a sync worker is held by one
connection until its request is whole, so two clients that send half a header
stop a service; a greenlet per connection costs nothing while it waits, and
greenlets never preempt inside a predict, so the warning filters do not race
(benchmarks/slow_clients.py measures the options side by side). The app (and so
the model) is built once in the master and forked, so workers share its memory.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from mlrm import logs
from mlrm.errors import DataError

log = logging.getLogger("mlrm.server")
# Seconds gunicorn lets requests in flight finish after SIGTERM (Kubernetes' grace period must exceed it).
GRACEFUL_TIMEOUT = 10


def _pre_fork(server: Any, worker: Any) -> None:
    # Objects the preloaded app made stay out of the collector's reach, so a
    # worker's first collection does not copy every page it shares with the master.
    gc.freeze()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_class_for(host: str) -> str:
    """gevent unless the service is bound to loopback only (why: this module's docstring)."""
    loopback = host == "localhost" or host.startswith("127.") or host == "::1"
    return "sync" if loopback else "gevent"


def check_tls(certfile: str | None, keyfile: str | None, where: str = "--certfile/--keyfile") -> None:
    """Fail before gunicorn starts, naming the file and the fix, when a TLS pair is incomplete or unusable."""
    if not certfile and not keyfile:
        return
    if not certfile or not keyfile:
        given, missing = ("certfile", "keyfile") if certfile else ("keyfile", "certfile")
        raise DataError(
            f"{where}: {given} given without {missing}. Fix: give both (PEM files), or neither for plain HTTP"
        )
    for label, path in (("certfile", certfile), ("keyfile", keyfile)):
        if not os.path.isfile(path):
            raise DataError(f"{where}: {label} {path}: no such file. Fix: give the path of a PEM file that exists")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise DataError(
            f"{where}: certfile {certfile} with keyfile {keyfile} does not load ({exc}). "
            "Fix: give a PEM certificate (chain) and the unencrypted PEM private key that belongs to it"
        ) from None


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code, serving factory()."""

    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory()


def serve(
    factory: Callable[[], Any],
    *,
    host: str,
    port: int,
    workers: int,
    name: str,
    log_level: str = "info",
    access_log: bool = False,
    on_ready: Callable[[], None] | None = None,
    timeout: int = 30,
    worker_class: str | None = None,
    threads: int = 1,
    certfile: str | None = None,
    keyfile: str | None = None,
    log_format: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests finish (graceful_timeout).

    log_format: text or json (mlrm/logs.py; None: $MLRM_LOG_FORMAT, else text), gunicorn's lines and the app's.
    worker_class None: worker_class_for(host). certfile and keyfile: HTTPS (checked with check_tls first).

    Set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported.
    """
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="mlrm-metrics-")
    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": worker_class or worker_class_for(host),
        "threads": threads,
        "preload_app": True,
        "timeout": timeout,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "loglevel": log_level,
        "errorlog": "-",
        "accesslog": "-" if access_log else None,
        # One format for gunicorn's lines and every logger of the app, in the master and the workers.
        "logconfig_dict": logs.gunicorn_config(name, log_format, log_level, access_log),
        "access_log_format": logs.ACCESS_FORMAT,
        "proc_name": f"mlrm:{name}",
        "child_exit": _child_exit,
        "pre_fork": _pre_fork,
        "when_ready": (lambda server: on_ready()) if on_ready else (lambda server: None),
        "limit_request_line": 8190,
        # One gunicorn per service, several per machine: no shared control socket.
        "control_socket_disable": True,
    }
    check_tls(certfile, keyfile)
    if certfile and keyfile:
        options.update(certfile=certfile, keyfile=keyfile)
    master = os.getpid()
    try:
        GunicornServer(factory, options).run()
    finally:
        # Workers are forked in run() and unwind through here when they exit: only the
        # master may remove the directory every process writes its metrics to.
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
