"""Start, watch, restart and stop the processes of a gateway.

Transport-free: the supervisor knows processes, log files, probes given as a
function, and a clock. Each service runs in its own session, so a Ctrl-C in
the terminal reaches only `mlrm up`, which then stops the services in order:
SIGTERM to each gunicorn master (in-flight requests finish), SIGKILL to the
whole process group after `stop_timeout`. A service that exits on its own is
restarted after a delay that doubles on every quick crash (exponential
backoff) and is counted; every line a service prints goes to its own log file
in mlrm's one log format (mlrm/logs.py): its log lines as they are, anything
else it prints wrapped into one, and `mlrm up`'s own lines as component `up`.
A service that exits with status 2 (CONFIG_ERROR: its config set or options
are unusable) is not restarted: restarting cannot fix it, so it is marked
failed and the end of its log is shown. Reloading (SIGHUP
to `mlrm up`) applies a changed plan: new services start, removed ones stop,
changed or failed ones restart; the others keep serving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from mlrm import logs
from mlrm.gateway import state as gateway_state
from mlrm.gateway.commands import SKIPPED_BECAUSE, Launch, Plan, guarded
from mlrm.gateway.manifest import Manifest
from mlrm.gateway.tls import probe_context

Say = Callable[[str], None]
# The exit status of `mlrm serve` and `mlrm training-service` for an unusable config or option.
CONFIG_ERROR = 2
Probe = Callable[[str], int | None]
# The component of `mlrm up`'s own log lines (mlrm/logs.py).
UP = "up"


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


class LogFile:
    """One service's log in mlrm's log format, appended: a line the service logged is kept as it is, any
    other (a print, a crash before logging was set up) is wrapped with the time, INFO and the component;
    rotated at max_bytes (x.log -> x.log.1 -> ... x.log.<keep>), so a gateway that runs for months does
    not fill its disk."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = 10 * 1024 * 1024,
        keep: int = 3,
        component: str | None = None,
        fmt: str | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self.component, self.fmt = component or path.stem, logs.log_format(fmt)
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed by close())
        self._size = self._fh.tell()

    def _rotate(self) -> None:
        self._fh.close()
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.keep > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def note(self, message: str, level: str = "INFO") -> None:
        """A line of `mlrm up`'s own (component up) in this log."""
        self.write(logs.line(self.fmt, UP, level, message))

    def write(self, line: str | bytes) -> None:
        text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip("\r\n")
        if not logs.formatted(text):
            text = logs.line(self.fmt, self.component, "INFO", text)
        data = text.encode("utf-8") + b"\n"
        with self._lock:
            if self._fh.closed:
                return  # a late line after stop: nowhere to write it
            if self._size + len(data) > self.max_bytes and self._size > 0:
                self._rotate()
            self._fh.write(data)
            self._size += len(data)

    def pump(self, stream: IO[bytes]) -> None:
        """Copy a process's output line by line until it closes."""
        for line in iter(stream.readline, b""):
            self.write(line)
        stream.close()

    def tail(self, lines: int = 8) -> list[str]:
        """The last lines a service printed (what it said before it failed), without mlrm up's own."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 16384))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        said = [line for line in text.splitlines()[1:] if (logs.parts(line) or ("",))[0] != UP]
        return said[-lines:]

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class Child:
    """One supervised service: its launch, process, restarts and state."""

    def __init__(self, launch: Launch, log: LogFile) -> None:
        self.launch, self.log = launch, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.pump: threading.Thread | None = None
        self.state = "stopped"  # starting, running, backoff, failed, stopping, stopped
        self.reason: str | None = None  # why it failed, for the status table
        self.restarts = 0
        self.failures = 0  # quick crashes in a row: the backoff exponent
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.last_exit: int | None = None

    @property
    def name(self) -> str:
        return self.launch.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, clock: float) -> None:
        self.log.note(f"{self.name}: starting: {' '.join(self.launch.argv)}")
        self.proc = subprocess.Popen(
            guarded(self.launch.argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.launch.cwd,
            env=self.launch.env,
            start_new_session=True,  # its own process group: signals from the terminal do not reach it
        )
        assert self.proc.stdout is not None
        self.pump = threading.Thread(
            target=self.log.pump, args=(self.proc.stdout,), daemon=True, name=f"log-{self.name}"
        )
        self.pump.start()
        self.state, self.started_at, self.restart_at, self.reason = "starting", clock, None, None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def signal(self, sig: int) -> None:
        """Send sig to the main process (SIGTERM: gunicorn's graceful stop)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL whatever is left of its process group (workers of a dead master)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self) -> None:
        """Wait for the process and its log pump after it has exited."""
        if self.proc is not None:
            self.proc.wait()
        if self.pump is not None:
            self.pump.join(timeout=2)

    def entry(self) -> dict[str, Any]:
        """This child in the state file."""
        return {
            "name": self.name,
            "kind": self.launch.kind,
            "url": self.launch.url,
            "port": self.launch.port,
            "pid": self.pid if self.state not in ("stopped", "backoff", "failed") else None,
            "state": self.state,
            "reason": self.reason,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "log": str(self.log.path),
            "probes": {"live": self.launch.probes.live, "ready": self.launch.probes.ready},
            "config_set": str(self.launch.config_set) if self.launch.config_set else None,
            # A process of several services (the manifest's `process`): `mlrm status` shows a row for each.
            "models": [{"name": name, "config_set": str(path)} for name, path in self.launch.models],
        }


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Supervisor:
    """Runs the launches of a plan as one gateway."""

    def __init__(
        self,
        manifest: Manifest,
        plan: Plan,
        *,
        say: Say = print,
        probe: Probe | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 0.2,
        should_stop: Callable[[], bool] = lambda: False,
        log_format: str | None = None,
    ) -> None:
        self.manifest, self.plan = manifest, plan
        self.log_format = logs.log_format(log_format)
        self.say, self.clock, self.tick = say, clock, tick
        self.probe = probe or self._http_probe
        self.should_stop = should_stop

        self.gateway_log = self._log("gateway")
        self.children = [Child(launch, self._log(launch.name)) for launch in plan.launches]
        self.started_at = now_iso()

    def _http_probe(self, url: str) -> int | None:
        """GET url's status; an https service is checked against the plan's certificate only.

        The context is made per probe (a millisecond): a certificate replaced in place counts at once."""
        context = probe_context(self.plan.ca_file) if self.plan.ca_file else None
        return gateway_state.http_get(url, timeout=1.0, context=context)[0]

    def _log(self, name: str) -> LogFile:
        m = self.manifest
        return LogFile(m.log_dir / f"{name}.log", m.log_max_bytes, m.log_keep, name, self.log_format)

    # -- reporting ---------------------------------------------------------

    def event(self, text: str, level: str = "INFO") -> None:
        """A supervision event: on the console and in gateway.log, one log line (component up)."""
        if self.log_format == "json":
            said = logs.line("json", UP, level, text)
        else:  # further lines (the end of a failed service's log) indented below the first
            first, _, more = text.partition("\n")
            said = "\n".join([logs.line("text", UP, level, first), *more.splitlines()])
        self.gateway_log.write(said)
        self.say(said)

    def state(self) -> dict[str, Any]:
        sup = self.manifest.supervision
        remote = None
        if self.manifest.training.mode == "remote" and self.plan.training_url:
            probes = self.manifest.training.probes
            remote = {"url": self.plan.training_url, "probes": {"live": probes.live, "ready": probes.ready}}
        return {
            "gateway": self.manifest.name,
            "manifest": str(self.manifest.path),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": now_iso(),
            "log_dir": str(self.manifest.log_dir),
            "training_url": self.plan.training_url,
            "remote_training": remote,
            # Paths, never secrets: `mlrm status` trusts the certificate and reads the token file itself.
            "ca_file": str(self.plan.ca_file) if self.plan.ca_file else None,
            "client_token_file": str(self.plan.client_token) if self.plan.client_token else None,
            "stop_timeout": sup.stop_timeout,
            "services": [c.entry() for c in self.children],
            "skipped": self.plan.skipped,
        }

    def save(self) -> None:
        gateway_state.write(self.manifest.state_file, self.state())

    # -- starting ----------------------------------------------------------

    def start(self) -> None:
        """Start the training service, wait until it is live, then every ML service."""
        for name, reason in self.plan.skipped.items():
            self.event(f"{name}: skipped: {reason} ({SKIPPED_BECAUSE.get(reason, '')})")
        first = [c for c in self.children if c.launch.kind == "training"]
        rest = [c for c in self.children if c.launch.kind != "training"]
        for group in (first, rest):
            for child in group:
                if self.should_stop():
                    return
                child.start(self.clock())
                self.event(f"{child.name}: started (pid {child.pid}) for {child.launch.url}")
            self.save()
            self.wait_live(group)
        self.save()

    def wait_live(self, children: list[Child]) -> None:
        """Wait until each child answers its live probe, exits, or start_timeout passes."""
        deadline = self.clock() + self.manifest.supervision.start_timeout
        waiting = [c for c in children if c.state == "starting"]
        while waiting and not self.should_stop() and self.clock() < deadline:
            for child in list(waiting):
                if child.poll() is not None:
                    self._exited(child)
                    waiting.remove(child)
                elif self.probe(child.launch.url + child.launch.probes.live) == 200:
                    self._live(child)
                    waiting.remove(child)
            if waiting:
                time.sleep(self.tick / 2)
        for child in waiting if not self.should_stop() else []:
            self.event(
                f"{child.name}: not live after {self.manifest.supervision.start_timeout:g}s; still waiting (see {child.log.path})",
                "WARNING",
            )

    def _live(self, child: Child) -> None:
        child.state = "running"
        ready = self.probe(child.launch.url + child.launch.probes.ready) == 200
        took = self.clock() - child.started_at
        hint = ": no trained model yet?" if child.launch.kind == "ml" else ""
        if child.launch.models:  # a process of several services is ready when every one of them is
            hint = f": a config set of it cannot answer yet; mlrm status {self.manifest.path} says which and why"
        note = "ready" if ready else f"live, not ready yet (GET {child.launch.probes.ready} is not 200{hint})"
        self.event(f"{child.name}: {note} at {child.launch.url} after {took:.1f}s")
        self.save()

    # -- supervising -------------------------------------------------------

    def _exited(self, child: Child) -> None:
        code = child.poll()
        assert code is not None
        child.kill_group()  # a dead master's workers must not keep the port
        child.reap()
        child.last_exit = code
        up_for = self.clock() - child.started_at
        if code == CONFIG_ERROR:
            self._failed(child, up_for)
            return
        sup = self.manifest.supervision
        child.failures = 1 if up_for >= sup.stable_after else child.failures + 1
        delay = min(sup.backoff_initial * 2 ** (child.failures - 1), sup.backoff_max)
        child.state, child.restart_at = "backoff", self.clock() + delay
        text = f"{child.name}: {describe_exit(code)} after {up_for:.1f}s; restart #{child.restarts + 1} in {delay:g}s"
        child.log.note(text, "WARNING")
        self.event(text, "WARNING")
        self.save()

    def _failed(self, child: Child, up_for: float) -> None:
        """A config error: restarting cannot help, so say why and leave it stopped."""
        said = child.log.tail()
        child.state, child.restart_at = "failed", None
        lines = [(logs.parts(line) or ("", line))[1].strip() for line in said]  # the messages alone
        child.reason = next((line for line in reversed(lines) if line), "see its log")
        text = (
            f"{child.name}: failed: exited with status {CONFIG_ERROR} (a config error) after {up_for:.1f}s; "
            f"not restarted. Fix it, then reload (kill -HUP {os.getpid()}) or restart the gateway. "
            f"Its log ({child.log.path}) ends:"
        )
        child.log.note(text, "ERROR")
        self.event("\n    ".join([text, *lines]), "ERROR")
        self.save()

    def check(self) -> None:
        """One round of supervision: notice exits, restart when due, notice live."""
        changed = False
        for child in self.children:
            if child.state in ("starting", "running") and child.poll() is not None:
                self._exited(child)
            elif child.state == "backoff" and child.restart_at is not None and self.clock() >= child.restart_at:
                child.restarts += 1
                child.start(self.clock())
                self.event(f"{child.name}: restarted (restart #{child.restarts}, pid {child.pid})")
                changed = True
            elif child.state == "starting" and self.probe(child.launch.url + child.launch.probes.live) == 200:
                self._live(child)
        if changed:
            self.save()

    def run(self, replan: Callable[[], Plan | None] = lambda: None) -> None:
        """Supervise until should_stop() is true; apply a plan that replan() returns (a reload)."""
        while not self.should_stop():
            self.check()
            fresh = replan()
            if fresh is not None:
                self.apply(fresh)
            time.sleep(self.tick)

    # -- stopping ----------------------------------------------------------

    def stop(self, *, timeout: float | None = None, force: Callable[[], bool] = lambda: False) -> None:
        """Stop every service: ML services first, the training service last.

        SIGTERM to each main process, then up to `timeout` for in-flight work
        to finish (force() true cuts it short), then SIGKILL to each process group.
        """
        ml = [c for c in self.children if c.launch.kind != "training"]
        training = [c for c in self.children if c.launch.kind == "training"]
        for group in (ml, training):
            self._stop_group(group, timeout, force)
        self.save()
        for child in self.children:
            child.log.close()
        self.gateway_log.close()

    def _stop_group(
        self, group: list[Child], timeout: float | None = None, force: Callable[[], bool] = lambda: False
    ) -> None:
        limit = self.manifest.supervision.stop_timeout if timeout is None else timeout
        running = [c for c in group if c.poll() is None and c.proc is not None]
        for child in running:
            child.state = "stopping"
            child.signal(signal.SIGTERM)
            self.event(f"{child.name}: SIGTERM sent to pid {child.pid}; letting in-flight requests finish")
        deadline = self.clock() + limit
        while any(c.poll() is None for c in running) and self.clock() < deadline and not force():
            time.sleep(0.05)
        for child in group:
            if child.poll() is None and child.proc is not None:
                why = "asked twice to stop" if force() else f"still running after {limit:g}s"
                self.event(f"{child.name}: {why}; SIGKILL", "WARNING")
            child.kill_group()
            child.reap()
            if child.state not in ("stopped", "failed"):
                code = child.poll()
                if code is not None and child.state == "stopping":
                    self.event(f"{child.name}: stopped ({describe_exit(code)})")
                child.state = "stopped"

    # -- reloading ---------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        """Reload to a new plan: stop removed services, restart changed or failed ones, start new ones.

        A service whose launch is unchanged and that has not failed keeps running untouched."""
        current = {c.name: c for c in self.children}
        wanted = {launch.name for launch in plan.launches}
        removed = [c for c in self.children if c.name not in wanted]
        self._stop_group(removed)
        for gone in removed:
            self.event(f"{gone.name}: no longer in the manifest; stopped")
            gone.log.close()
        children: list[Child] = []
        started: list[Child] = []
        for launch in plan.launches:
            known = current.get(launch.name)
            if known is not None and known.launch == launch and known.state != "failed":
                children.append(known)
                continue
            if known is None:
                child = Child(launch, self._log(launch.name))
            else:
                child = known
                self._stop_group([child])
                child.launch = launch
            child.start(self.clock())
            self.event(f"{child.name}: started (pid {child.pid}) for {child.launch.url} (reload)")
            children.append(child)
            started.append(child)
        self.plan, self.children = plan, children
        self.save()
        self.wait_live(started)
        self.event(f"reloaded: {len(started)} service(s) (re)started, {len(children) - len(started)} kept running")
