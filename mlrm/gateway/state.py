"""What a running gateway looks like: its state file and its status table.

`mlrm up` keeps `<data_dir>/gateway.json` current (pids, ports, restart
counts), written atomically; `mlrm status` reads it and probes every service
live, so the table shows what answers now, not what was last written.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrm.gateway.tls import probe_context

HEADERS = ("SERVICE", "URL", "VERSION", "READY", "RESTARTS", "PID")


def http_get(
    url: str, timeout: float = 1.0, *, context: ssl.SSLContext | None = None, token: str | None = None
) -> tuple[int | None, Any]:
    """(status, JSON body or None) of a GET; status None when nothing answers.

    A probe, not TrainingServiceClient: it asks ML services and training services alike, within
    1 s, and for a status table "nothing answers" is a value to show, not an error to raise.
    context: how an https URL is verified (None: the system's CAs); token: sent as a bearer token.
    """
    import urllib.error
    import urllib.request

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (URLs we built)
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None, None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


@dataclass(frozen=True)
class Asker:
    """How `mlrm status` asks a gateway's services: its certificate as trust anchor, its client token."""

    context: ssl.SSLContext | None = None
    token: str | None = None

    @classmethod
    def of(cls, state: dict[str, Any]) -> Asker:
        """From a state file: the paths `mlrm up` wrote there (the token is read now, so a rotated one counts)."""
        ca_file, token_file = state.get("ca_file"), state.get("client_token_file")
        token = None
        if token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip() or None
            except OSError:
                token = None  # the version column shows "-", as without a token
        return cls(probe_context(ca_file) if ca_file else None, token)

    def get(self, url: str, timeout: float = 1.0) -> tuple[int | None, Any]:
        return http_get(url, timeout, context=self.context, token=self.token)


@dataclass
class Row:
    """One line of the status table."""

    service: str
    url: str
    version: str
    ready: str
    restarts: str
    pid: str
    note: str = ""  # why it is degraded or failed, shown under the table

    def cells(self) -> tuple[str, ...]:
        return (self.service, self.url, self.version, self.ready, self.restarts, self.pid)


def _degraded(body: Any) -> str:
    """The reason a training service's health gives for being degraded, or ''."""
    if not isinstance(body, dict) or body.get("status") != "degraded":
        return ""
    return "; ".join(
        f"config set '{u['name']}' is unavailable: {u['reason']}. Fix: {u['fix']}" for u in body["unavailable"]
    )


def probe(entry: dict[str, Any], timeout: float = 1.0, asker: Asker = Asker()) -> tuple[str, str, str]:
    """(version, ready, why degraded) of one running service, asked over HTTP(S) now."""
    url, probes = entry["url"], entry["probes"]
    live, _ = asker.get(url + probes["live"], timeout)
    if live != 200:
        return "-", "down" if entry.get("state") == "running" else entry.get("state", "down"), ""
    ready, body = asker.get(url + probes["ready"], timeout)
    version = "-"
    if entry["kind"] == "training":
        why = _degraded(body if probes["ready"] == "/v1/health" else asker.get(url + "/v1/health", timeout)[1])
        if ready == 200 and why:
            return version, "degraded", why
    if entry["kind"] == "ml":
        # GET / looks for a new current version before it answers, and needs only the predict scope
        # (/v1/config needs admin, and sends the whole learned model).
        status, body = asker.get(url + "/", timeout)
        current = body.get("version") if status == 200 and isinstance(body, dict) else None
        if current is not None:
            version = str(current)
    return version, "yes" if ready == 200 else "not yet", ""


def entry_rows(entry: dict[str, Any], *, live: bool = True, asker: Asker = Asker()) -> list[Row]:
    """The rows of one process of the state: one, or one per service of a `process` of several."""
    running = live and entry.get("state") in ("running", "starting")
    restarts, pid = str(entry.get("restarts", 0)), str(entry.get("pid") or "-")
    if entry.get("models"):
        return _model_rows(entry, running, restarts, pid, asker)
    if running:
        version, ready, note = probe(entry, asker=asker)
    else:
        version, ready, note = entry.get("version") or "-", entry.get("state", "-"), entry.get("reason") or ""
    return [Row(entry["name"], entry["url"], version, ready, restarts, pid, note)]


def _model_rows(entry: dict[str, Any], running: bool, restarts: str, pid: str, asker: Asker) -> list[Row]:
    """A row per service of a process serving several config sets, each as GET /v1/models reports it now.

    Matched by config set folder: the name in the URL is the one in its service.yaml, which may differ
    from the service's name in the manifest."""
    url, state = entry["url"], entry.get("state", "-")
    listed: dict[Path, dict[str, Any]] = {}
    gone = "down" if state == "running" else state
    if running and asker.get(url + entry["probes"]["live"])[0] == 200:
        status, body = asker.get(url + "/v1/models")
        if status == 200 and isinstance(body, dict):
            listed = {Path(m["path"]).resolve(): m for m in body.get("models", [])}
        gone = "unknown" if status != 200 else "not served"
    out = []
    for model in entry["models"]:
        found = listed.get(Path(model["config_set"]).resolve())
        if found is None:
            out.append(Row(model["name"], url, "-", gone, restarts, pid, "" if running else entry.get("reason") or ""))
            continue
        ready = "yes" if found["ready"] else "not yet" if found["available"] else "unavailable"
        note = f"{found['reason']}. Fix: {found['fix']}" if not found["ready"] and found.get("reason") else ""
        version = "-" if found.get("version") is None else str(found["version"])
        out.append(Row(model["name"], f"{url}/v1/models/{found['name']}", version, ready, restarts, pid, note))
    return out


def rows(state: dict[str, Any], *, live: bool = True) -> list[Row]:
    """The table rows of a state (live=True: probe every service now)."""
    out = []
    asker = Asker.of(state) if live else Asker()
    for entry in state["services"]:
        out += entry_rows(entry, live=live, asker=asker)
    for name, reason in state.get("skipped", {}).items():
        row = Row(name, "-", "-", reason, "-", "-")
        out.insert(0, row) if name == "training-service" else out.append(row)  # it starts first, so it is listed first
    remote = state.get("remote_training")
    if remote:
        status, _ = http_get(remote["url"] + remote["probes"]["ready"]) if live else (None, None)
        out.append(
            Row(
                "training-service",
                remote["url"],
                "-",
                "remote" + (": yes" if status == 200 else ": unreachable"),
                "-",
                "-",
            )
        )
    return out


def table(table_rows: list[Row]) -> str:
    """Rows as an aligned text table with a header line."""
    cells = [HEADERS, *(r.cells() for r in table_rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    notes = [f"{r.service}: {r.ready}: {r.note}" for r in table_rows if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def follow_file(state_file: Path) -> Path:
    """Where `mlrm up` keeps what the followers of a remote-mode gateway last saw (training.mode: remote)."""
    return state_file.with_name("following.json")


def read_following(state_file: Path) -> dict[str, Any] | None:
    """{"url", "followers": [...]} as the follow thread of `mlrm up` last wrote it; None before its first check."""
    try:
        return read(follow_file(state_file))
    except ValueError:  # not JSON: never, as it is written atomically; shown as not checked yet
        return None


def following_lines(state: dict[str, Any]) -> list[str]:
    """A line per followed config set, for under the status table: last check, version, centre, last error."""
    following = state.get("following")
    if not state.get("remote_training"):
        return []
    if not following:
        return ["following: not checked yet"]
    out = []
    for f in following.get("followers", []):
        version = "-" if f.get("version") is None else str(f["version"])
        if f.get("reachable") is None:
            centre = "not asked yet"
        elif f["reachable"]:
            centre = "centre reachable"
        else:
            centre = f"centre unreachable since {f['unreachable_since']}"
        error = f"; last error: {f['last_error']}" if f.get("last_error") else ""
        out.append(f"following {f['url']}: {f['name']}: version {version} here, last check {f['last_check']}, "
                   f"{centre}{error}")  # fmt: skip
    return out


def write(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically (a reader never sees half of it)."""
    from mlrm.storage.versions import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(state, indent=2) + "\n").encode("utf-8"))


def read(path: Path) -> dict[str, Any] | None:
    """The state file, or None when there is none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


def alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
