"""The dashboard's HTTP server: the static page, one JSON snapshot, two actions, a probe.

The standard library's threading HTTP server (no Flask, no extra dependency): a handful of pages
polled every few seconds. Routes and the scope each needs, as in the services' ROUTES tables:

    GET  /, /static/...                      open (the page and its files hold no data)
    GET  /healthz                            open (the supervisor's probe)
    GET  /api/state                          metrics
    POST /api/services/NAME/train            admin, forwarded to the training service
    POST /api/services/NAME/rollback         admin, forwarded to the training service

Without a tokens file (loopback) everything is open. An action is forwarded with the operator's own
Authorization header, so the training service checks it again and its audit log names the operator.
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import re
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlrm import logs
from mlrm.credentials import CredentialsError, Guard, add_options, guard_of, serving_tokens
from mlrm.dashboard.collector import Collector, fetch
from mlrm.errors import RequestError
from mlrm.gateway.tls import probe_context

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1024  # bytes of an action's body: {"version": N}
MAX_CLIENTS = 32  # requests handled at once; more are refused (closed), not queued without bound
ACTION = re.compile(r"^/api/services/([A-Za-z0-9_.-]{1,64})/(train|rollback)$")
# The page loads only its own files: no inline script, nothing from elsewhere.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CONFIG_ERROR = 2  # the exit status the supervisor does not restart on (as mlrm serve)

log = logging.getLogger("mlrm.dashboard")


def static_files() -> dict[str, Path]:
    """URL path -> file, fixed at start: nothing outside the package's static folder is ever served."""
    files = {f"/static/{p.relative_to(STATIC).as_posix()}": p for p in STATIC.rglob("*") if p.is_file()}
    files["/"] = STATIC / "index.html"
    return files


class Dashboard(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 32

    def __init__(self, address: tuple[str, int], collector: Collector, guard: Guard) -> None:
        super().__init__(address, Handler)
        self.collector, self.guard, self.files = collector, guard, static_files()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # its thread never started
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, not a traceback: a client that hung up or spoke plain HTTP to HTTPS is no news."""
        error = sys.exc_info()[1]
        log.warning("%s: %s: %s", client_address[0], type(error).__name__, error)


class Handler(BaseHTTPRequestHandler):
    server: Dashboard
    timeout = 10  # seconds a client may take to send its request: a slow one cannot hold a thread forever
    server_version = "mlrm-dashboard"

    # -- answers -----------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {**HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode("utf-8"), "application/json")

    def _problem(self, status: int, title: str, detail: str) -> None:
        body = {"title": title, "status": status, "detail": detail}
        extra = {"WWW-Authenticate": 'Bearer realm="mlrm"'} if status == 401 else None
        self._send(status, json.dumps(body).encode("utf-8"), "application/problem+json", extra)

    def _allowed(self, scope: str) -> bool:
        try:
            self.server.guard.check(scope, self.headers.get("Authorization"))
        except RequestError as exc:
            self._problem(exc.status, exc.title, exc.detail or exc.title)
            return False
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the name BaseHTTPRequestHandler calls)
        """Actions and failures go to the log (the supervisor stamps each line); every poll would drown them."""
        if self.command == "POST" or (len(args) > 1 and not str(args[1]).startswith(("2", "3"))):
            log.info("%s %s", self.address_string(), format % args)

    # -- routes ------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"live": True, "rounds": self.server.collector.rounds})
        elif path == "/api/state":
            if self._allowed("metrics"):
                self._json(200, self.server.collector.snapshot())
        elif path in self.server.files:
            file = self.server.files[path]
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
                kind += "; charset=utf-8"
            self._send(200, file.read_bytes(), kind)
        else:
            self._problem(404, "Not Found", f"no page {path}; the dashboard is at /")

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        match = ACTION.match(self.path)
        if match is None:
            self._problem(404, "Not Found", f"no action {self.path}; actions: /api/services/NAME/train|rollback")
            return
        if not self._same_origin() or not self._allowed("admin"):
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._problem(413, "Payload Too Large", f"an action's body is at most {MAX_BODY} bytes")
            return
        body = self.rfile.read(length) if length else b"{}"
        self._forward(match.group(1), match.group(2), body)

    def _same_origin(self) -> bool:
        """Actions only from the page itself: JSON (so a form on another site cannot post one without a
        CORS preflight, which is never granted) and, when the browser says where it comes from, from here."""
        origin, host = self.headers.get("Origin"), self.headers.get("Host", "")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self._problem(415, "Unsupported Media Type", "send actions as application/json, from the dashboard's page")
            return False
        if origin is not None and origin.split("://", 1)[-1] != host:
            self._problem(403, "Forbidden", f"an action from {origin} is refused: only the dashboard's own page acts")
            return False
        return True

    def _forward(self, name: str, action: str, body: bytes) -> None:
        snap = self.server.collector.snapshot()
        rows = {row["name"]: row for row in snap.get("services", []) if row.get("kind") == "ml"}
        url = snap.get("training_url")
        if name not in rows or not url:
            known = ", ".join(rows) or "none"
            why = "this gateway has no training service" if not url else f"no ML service '{name}' (here: {known})"
            self._problem(404, "Not Found", why)
            return
        target = (rows[name].get("training") or {}).get("name")
        if target is None:
            self._problem(409, "Conflict", f"the training service does not train '{name}' (or could not be read)")
            return
        state = self.server.collector.state() or {}
        context = probe_context(state["ca_file"]) if state.get("ca_file") else None
        status, raw = fetch(
            f"{url}/v1/services/{target}/{action}",
            context=context,
            authorization=self.headers.get("Authorization"),
            method="POST",
            body=body if action == "rollback" else None,
        )
        self.server.collector.wake()
        if status is None:
            self._problem(502, "Bad Gateway", f"the training service at {url} did not answer")
            return
        self._send(status, raw, "application/json")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlrm.dashboard",
        description="The dashboard of a running gateway, in the browser (mlrm up starts it: docs/dashboard.md).",
    )
    p.add_argument("--state", required=True, type=Path, help="the gateway's state file (<data_dir>/gateway.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to bind (default: 8765)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between samples of the services")
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of history the charts show")
    p.add_argument(
        "--token-file", type=Path, help="file holding the token sent to the services (predict,metrics,admin)"
    )
    p.add_argument("--certfile", help="serve HTTPS with this PEM certificate (chain)")
    p.add_argument("--keyfile", help="...and this unencrypted PEM key")
    add_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure("dashboard")  # mlrm's one log format; mlrm up passes its choice in MLRM_LOG_FORMAT
    try:
        tokens = serving_tokens("dashboard", args.host, args.tokens, args.insecure)
    except CredentialsError as exc:
        log.error("%s", exc)
        return CONFIG_ERROR
    collector = Collector(args.state, args.interval, args.minutes, args.token_file)
    server = Dashboard((args.host, args.port), collector, guard_of(tokens))
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
        # The handshake happens in the request's thread, so a slow client cannot hold up accept().
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sampler = threading.Thread(target=collector.run, args=(stop,), daemon=True, name="sampler")
    sampler.start()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    scheme = "https" if args.certfile else "http"
    log.info("serving %s://%s:%s/ for %s", scheme, args.host, server.server_address[1], args.state)
    while not stop.wait(0.5):
        pass
    collector.wake()
    server.shutdown()
    server.server_close()
    return 0
