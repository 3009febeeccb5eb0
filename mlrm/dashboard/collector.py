"""One clock for every browser: sample the gateway's services, keep the last minutes, answer snapshots.

Each round reads the gateway's state file (what `mlrm up` runs, restarts, ports), asks every ML
service `GET /` (the version it serves; it also makes the service look for a new one) and `GET
/metrics`, and asks the training service for its config sets, recent jobs and sample counts. Drift
and live performance come from the same /metrics; `GET /v1/drift` and `GET /v1/performance` are
asked only for what /metrics lacks (why there is no figure, the drift window's min_rows), once per
version and whenever a figure appears or goes, not every round. The
chart points are computed here, between consecutive scrapes, and kept in memory for `minutes`, so
every open page shows the same history and the services are asked once per round however many
pages are open.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrm.dashboard.metrics import Scrape, parse, point
from mlrm.gateway import state as gateway_state
from mlrm.gateway.tls import probe_context

JOBS_SHOWN = 5
RECENT = 60.0  # seconds the table's rate, latency and errors are taken over
TIMEOUT = 2.0  # seconds one question to a service may take
SERIES = ("t", "rate", "errors", "p50", "p99", "psi", "prediction_psi", "rolling", "holdout")
MAX_ANSWER = 4 * 1024 * 1024  # bytes read of one answer: a confused service cannot exhaust the dashboard


def fetch(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    authorization: str | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int | None, bytes]:
    """(status, body) of one HTTP request; status None when nothing answers."""
    headers = {"Authorization": authorization} if authorization else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 (URLs of the state file)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as answer:  # noqa: S310
            return answer.status, answer.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_ANSWER)
    except (urllib.error.URLError, OSError, ValueError):
        return None, b""


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _folder(path: str | None) -> str:
    """The config set's folder name, whether path names the folder or its service.yaml."""
    if not path:
        return ""
    p = Path(path)
    return p.parent.name if p.name == "service.yaml" else p.name


@dataclass
class History:
    """One ML service's last scrapes and the chart points between them."""

    scrapes: deque[tuple[float, Scrape]]
    points: deque[dict[str, Any]]

    @classmethod
    def empty(cls, length: int) -> History:
        return cls(deque(maxlen=length), deque(maxlen=length))

    def add(self, at: float, scrape: Scrape) -> None:
        if self.scrapes:
            before_at, before = self.scrapes[-1]
            self.points.append({"t": round(at, 3), **point(before, scrape, at - before_at)})
        self.scrapes.append((at, scrape))

    def series(self) -> dict[str, list[Any]]:
        """Columns for the charts: t (unix s), rate (req/s), errors (share), p50 and p99 (ms), the
        largest input PSI and the predictions' PSI, the live (rolling) metric and the holdout's."""
        return {key: [p.get(key) for p in self.points] for key in SERIES}

    def recent(self, seconds: float = RECENT) -> dict[str, Any]:
        """Rate, error share, p50 and p99 over the last `seconds` (the table's columns): one point
        between the newest scrape and the oldest one within that time."""
        if len(self.scrapes) < 2:
            return {"rate": None, "errors": None, "p50": None, "p99": None, "seconds": 0}
        newest_at, newest = self.scrapes[-1]
        oldest_at, oldest = next((at, s) for at, s in self.scrapes if at >= newest_at - seconds or s is newest)
        if oldest is newest:
            oldest_at, oldest = self.scrapes[-2]
        return {**point(oldest, newest, newest_at - oldest_at), "seconds": round(newest_at - oldest_at)}

    def labels(self) -> dict[str, dict[str, float]]:
        """Predictions by label: since the service started, and within the window the charts show."""
        if not self.scrapes:
            return {}
        (_, oldest), (_, newest) = self.scrapes[0], self.scrapes[-1]
        restarted = newest.requests < oldest.requests
        return {
            label: {"total": total, "recent": total if restarted else total - oldest.predictions.get(label, 0.0)}
            for label, total in sorted(newest.predictions.items())
        }


@dataclass
class Reader:
    """How the dashboard asks the gateway's services: their certificate, its own token (read each round)."""

    context: ssl.SSLContext | None = None
    token: str | None = None

    @classmethod
    def of(cls, state: dict[str, Any], token_file: Path | None) -> Reader:
        token = None
        if token_file is not None:
            try:
                token = token_file.read_text(encoding="utf-8").strip() or None
            except OSError:
                token = None  # guarded routes then answer 401, and the page says which token to set
        ca_file = state.get("ca_file")
        return cls(probe_context(ca_file) if ca_file else None, token)

    def get(self, url: str) -> tuple[int | None, bytes]:
        return fetch(url, context=self.context, authorization=f"Bearer {self.token}" if self.token else None)


@dataclass
class Collector:
    """Samples a gateway every `interval` seconds and keeps `minutes` of history."""

    state_file: Path
    interval: float = 2.0
    minutes: float = 10.0
    token_file: Path | None = None
    histories: dict[str, History] = field(default_factory=dict)
    _snapshot: dict[str, Any] = field(default_factory=dict)
    _versions: dict[str, tuple[Any, list[dict[str, Any]]]] = field(default_factory=dict)
    _details: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # URL -> (what it was asked for, its JSON)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    rounds: int = 0

    @property
    def length(self) -> int:
        return max(2, int(self.minutes * 60 / self.interval) + 1)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot

    def wake(self) -> None:
        """Sample now (after an action), not at the next tick."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 (one bad round must not end the dashboard; said on the page)
                with self._lock:
                    self._snapshot = {**self._snapshot, "error": f"{type(exc).__name__}: {exc}"}
            self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
            self._wake.clear()

    def state(self) -> dict[str, Any] | None:
        found = gateway_state.read(self.state_file)
        return found if found is not None and gateway_state.alive(found.get("pid")) else None

    def sample(self) -> None:
        """One round: every service asked once; the snapshot replaced whole."""
        now = time.time()
        state = self.state()
        if state is None:
            snap: dict[str, Any] = {
                "gateway": None,
                "now": now,
                "error": f"no gateway is running (no {self.state_file} of a living mlrm up); start it: mlrm up MANIFEST",
            }
            with self._lock:
                self._snapshot = snap
            return
        reader = Reader.of(state, self.token_file)
        training = self._training(state, reader)
        rows = []
        for entry in state["services"]:
            if entry["kind"] == "dashboard":
                continue
            row = {key: entry.get(key) for key in ("name", "kind", "url", "state", "restarts", "pid", "reason")}
            if entry["kind"] == "ml" and entry.get("models"):
                rows += self._process(entry, row, reader, now, training["sets"])
                continue
            if entry["kind"] == "ml":
                row.update(self._ml(entry, reader, now))
                row["training"] = training["sets"].get(_folder(entry.get("config_set")))
            else:
                row.update(ready=training["ready"], version=None, note=training.get("note"))
            rows.append(row)
        for name in list(self.histories):
            if name not in {r["name"] for r in rows}:
                del self.histories[name]  # gone from the manifest
        self.rounds += 1
        snap = {
            "gateway": state["gateway"],
            "manifest": state["manifest"],
            "started_at": state["started_at"],
            "now": now,
            "interval": self.interval,
            "minutes": self.minutes,
            "training_url": state.get("training_url"),
            "training_error": training.get("error"),
            "services": rows,
            "skipped": state.get("skipped", {}),
            "rounds": self.rounds,
        }
        with self._lock:
            self._snapshot = snap

    def _ml(self, entry: dict[str, Any], reader: Reader, now: float) -> dict[str, Any]:
        """Version, readiness and the chart data of one ML service."""
        out: dict[str, Any] = {"version": None, "ready": entry.get("state"), "metrics_error": None}
        if entry.get("state") not in ("running", "starting"):
            history = self._history(entry["name"])
            return {**out, "series": history.series(), "recent": history.recent(), "labels": {}}
        status, raw = reader.get(entry["url"] + "/")
        body = _json(raw) if status == 200 else None
        if isinstance(body, dict):
            out["version"], out["ready"] = body.get("version"), "yes" if body.get("ready") else "not yet"
        else:
            ready, _ = reader.get(entry["url"] + entry["probes"]["ready"])
            out["ready"] = "yes" if ready == 200 else "down" if ready is None else "not yet"
        status, raw = reader.get(entry["url"] + "/metrics")
        history = self._history(entry["name"])
        scrape = None
        if status == 200:
            scrape = parse(raw.decode("utf-8", "replace"))
            history.add(now, scrape)
            if out["version"] is None and scrape.versions:
                out["version"] = max(scrape.versions.values())
        elif status is not None:
            out["metrics_error"] = self._refused("/metrics", status, "metrics")
        monitored = self._monitoring(entry["url"] + "/v1", out["version"], scrape, reader)
        return {**out, **monitored, "series": history.series(), "recent": history.recent(), "labels": history.labels()}

    def _process(
        self, entry: dict[str, Any], row: dict[str, Any], reader: Reader, now: float, sets: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """A row per service of a process that serves several config sets (the manifest's `process`):
        version and readiness from its GET /v1/models, charts from its /metrics split by `model`."""
        listed: dict[str, dict[str, Any]] = {}
        text = None
        if entry.get("state") in ("running", "starting"):
            status, raw = reader.get(entry["url"] + "/v1/models")
            body = _json(raw) if status == 200 else None
            if isinstance(body, dict):
                listed = {_folder(m.get("path")): m for m in body.get("models", [])}
            status, raw = reader.get(entry["url"] + "/metrics")
            text = raw.decode("utf-8", "replace") if status == 200 else None
        out = []
        for model in entry["models"]:
            folder = _folder(model["config_set"])
            found = listed.get(folder)
            history = self._history(model["name"])
            scrape = None
            if found is not None and text is not None:
                scrape = parse(text, found["name"])
                history.add(now, scrape)
            base = f"{entry['url']}/v1/models/{found['name']}" if found else ""
            monitored = self._monitoring(base, (found or {}).get("version"), scrape, reader)
            ready = entry.get("state")
            if found is not None:
                ready = "yes" if found.get("ready") else "not yet" if found.get("available") else "unavailable"
            out.append({
                **row, "name": model["name"], "url": f"{entry['url']}/v1/models/{found['name'] if found else ''}",
                "version": found.get("version") if found else None, "ready": ready,
                "reason": (found or {}).get("reason") or row.get("reason"), "metrics_error": None,
                "series": history.series(), "recent": history.recent(), "labels": history.labels(),
                "training": sets.get(folder), **monitored,
            })  # fmt: skip
        return out

    def _monitoring(self, base: str, version: Any, scrape: Scrape | None, reader: Reader) -> dict[str, Any]:
        """The card's drift and performance: the figures of this round's scrape, with what only the JSON
        says (reason, min_rows), read again only when the version changes or a figure appears or goes."""
        if scrape is None:
            return {"drift": None, "performance": None}
        drift = self._detail(f"{base}/drift", (version, scrape.drift_rows is not None), reader)
        performance = self._detail(f"{base}/performance", (version, scrape.rolling is not None), reader)
        return {"drift": drift_of(scrape, drift), "performance": performance_of(scrape, performance)}

    def _detail(self, url: str, key: Any, reader: Reader) -> dict[str, Any]:
        known = self._details.get(url)
        if known is None or known[0] != key:
            status, raw = reader.get(url)
            if status is None:
                return {}  # asked again next round
            body = _json(raw) if status == 200 else None
            known = self._details[url] = (
                key,
                body if isinstance(body, dict) else {"reason": f"{url} answered {status}"},
            )
        return known[1]

    def _history(self, name: str) -> History:
        history = self.histories.get(name)
        if history is None or history.scrapes.maxlen != self.length:
            history = self.histories[name] = History.empty(self.length)
        return history

    def _refused(self, what: str, status: int, scope: str) -> str:
        if status in (401, 403):
            return (
                f"{what} answered {status}: the dashboard needs a token with scope {scope} "
                "(dashboard.token_file in the manifest; scopes predict,metrics,admin)"
            )
        return f"{what} answered {status}"

    def _training(self, state: dict[str, Any], reader: Reader) -> dict[str, Any]:
        """The training service's health and, per config set, its jobs, sample counts and versions."""
        url = state.get("training_url")
        out: dict[str, Any] = {"ready": None, "sets": {}}
        if not url:
            return out
        status, raw = reader.get(url + "/v1/health")
        health = _json(raw)
        if status is None:
            return {**out, "ready": "down"}
        degraded = isinstance(health, dict) and health.get("status") == "degraded"
        out["ready"] = "degraded" if degraded else "yes" if status == 200 else "not yet"
        if degraded:
            out["note"] = "; ".join(f"{u['name']}: {u['reason']}" for u in health.get("unavailable", []))
        status, raw = reader.get(url + "/v1/services")
        index = _json(raw)
        if status != 200 or not isinstance(index, dict):
            return {**out, "error": self._refused("the training service's /v1/services", status or 0, "admin")}
        for item in index.get("services", []):
            if item.get("available"):
                out["sets"][_folder(item.get("path"))] = self._set(url, item, reader)
        return out

    def _set(self, url: str, item: dict[str, Any], reader: Reader) -> dict[str, Any]:
        name = item["name"]
        base = f"{url}/v1/services/{name}"
        _, raw = reader.get(f"{base}/jobs?limit={JOBS_SHOWN}")
        jobs = (_json(raw) or {}).get("jobs", []) if raw else []
        _, raw = reader.get(f"{base}/samples/stats")
        stats = _json(raw) or {}
        # Versions are read from disk by the training service: asked again only when something changed.
        key = (item.get("current_version"), jobs[0]["id"] if jobs else None, jobs[0]["state"] if jobs else None)
        known = self._versions.get(name)
        if known is None or known[0] != key:
            _, raw = reader.get(f"{base}/versions")
            versions = (_json(raw) or {}).get("versions", [])
            known = self._versions[name] = (key, versions)
        return {
            "name": name,
            "current_version": item.get("current_version"),
            "active_job": (item.get("active_job") or {}).get("id"),
            "jobs": [_job(j) for j in jobs],
            "samples": {k: stats.get(k) for k in ("total", "new_since_current", "quarantined", "labels")},
            "versions": [
                {k: v.get(k) for k in ("version", "current", "promoted", "score", "metric", "reason")} for v in known[1]
            ],
        }


def _level(value: float | None, enough: bool | None, thresholds: dict[str, Any]) -> str | None:
    """As mlrm.core.drift.level, with the thresholds the service gave (no numpy imported here)."""
    if value is None or enough is None:
        return None
    if not enough:
        return "insufficient"
    moderate, significant = thresholds.get("moderate", 0.1), thresholds.get("significant", 0.25)
    return "significant" if value >= significant else "moderate" if value >= moderate else "none"


def drift_of(scrape: Scrape, body: dict[str, Any]) -> dict[str, Any]:
    """What the card shows of drift: PSI per input (largest first), of the predictions, the window's rows
    and whether they are enough, from /metrics; the reason from GET /v1/drift when there are no figures."""
    if scrape.drift_rows is None:
        if body.get("available"):  # the figures came between the scrape and the question: next round has them
            return {"available": False, "reason": "drift figures are being gathered"}
        return {"available": False, "reason": body.get("reason") or "no drift figures in /metrics"}
    window = body.get("window") or {}
    thresholds = body.get("thresholds") or {}
    min_rows = window.get("min_rows")
    rows = int(scrape.drift_rows)
    enough = None if min_rows is None else rows >= min_rows
    inputs = sorted(scrape.drift.items(), key=lambda item: -item[1])
    return {
        "available": True,
        "reason": None,
        "thresholds": {"moderate": thresholds.get("moderate", 0.1), "significant": thresholds.get("significant", 0.25)},
        "window": {"seconds": window.get("seconds"), "rows": rows, "min_rows": min_rows, "enough": enough},
        "inputs": [{"name": n, "psi": round(v, 4), "level": _level(v, enough, thresholds)} for n, v in inputs],
        "predictions": {
            "psi": None if scrape.drift_predictions is None else round(scrape.drift_predictions, 4),
            "level": _level(scrape.drift_predictions, enough, thresholds),
        },
    }


def performance_of(scrape: Scrape, body: dict[str, Any]) -> dict[str, Any]:
    """The live metric from feedback beside the holdout's, from /metrics; the reason from GET /v1/performance."""
    if scrape.rolling is None:
        if body.get("available"):
            return {"available": False, "reason": "live figures are being gathered"}
        return {"available": False, "reason": body.get("reason") or "no live performance in /metrics"}
    return {
        "available": True,
        "reason": None,
        "metric": scrape.metric,
        "rolling": round(scrape.rolling, 6),
        "holdout": None if scrape.holdout is None else round(scrape.holdout, 6),
        "rows": None if scrape.performance_rows is None else int(scrape.performance_rows),
        "seconds": (body.get("window") or {}).get("seconds"),
    }


def _job(job: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a job: when, how it ended, and the gate's decision with its reason."""
    result = job.get("result") or {}
    return {
        "id": job.get("id"),
        "state": job.get("state"),
        "trigger": job.get("trigger"),
        "created_at": job.get("created_at"),
        "finished_at": job.get("finished_at"),
        "promoted": result.get("promoted"),
        "reason": result.get("reason") or job.get("error"),
        "version": result.get("version"),
    }
