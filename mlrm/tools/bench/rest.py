"""Prediction cycles against one ML service over HTTP, as a client does.

- RTT: `GET /v2/health/live` (the cheapest route: no model, no body), timed
  on the client from sending to the whole answer read.
- Latency: sequential `POST /v1/models/NAME/predict` (or /v1/predict) with `batch` instances each. The
  round trip is timed on the client; `compute` is what the service reports
  in its `Server-Timing` header (the core's predict: validation, encoding,
  the model); ingest + transport = round trip - compute (the network both
  ways, HTTP parsing, JSON decoding and encoding in the service).
- Throughput: at each concurrency level, that many threads each send
  `requests` predict requests (a bounded loop, no time limit); requests/s =
  all answered requests / the wall time of the level.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from mlrm.errors import DataError, StateError

TIMEOUT = 30.0
Tick = Callable[[str], None]


def spread(values: list[float]) -> dict[str, float] | None:
    """median, p95, min, max and count of values in ms (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "n": len(ordered),
    }


def server_timing(header: str | None) -> dict[str, float]:
    """`compute;dur=0.05, app;dur=0.08` -> {"compute": 0.05, "app": 0.08} (ms); {} without the header."""
    found: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    found[name] = float(value)
                except ValueError:
                    pass
    return found


class Target:
    """One ML service's base URL, checked to serve the config set being measured."""

    def __init__(self, url: str, name: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DataError(
                f"--target {url!r}: not an http(s) URL; give the base URL of an ML service, e.g. http://gateway:8001"
            )
        self.url = url.rstrip("/")
        self.name = name
        self.predict_path = "/v1/predict"
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def _get(self, path: str) -> requests.Response:
        try:
            return requests.get(self.url + path, headers=self.headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise StateError(
                f"target {self.url}: cannot connect ({type(exc).__name__}); is the service running there?"
            ) from None

    def check(self) -> dict[str, Any]:
        """The served set's index (name, version, ready); StateError when it is not the set measured, or not ready.

        A service serving several sets (`mlrm serve a b`) answers this set at /v1/models/NAME; one serving
        only this set (or an mlrm without per-set routes) at /."""
        answer = self._get(f"/v1/models/{self.name}")
        if answer.status_code == 200 and _json(answer).get("name") == self.name:
            self.predict_path = f"/v1/models/{self.name}/predict"
            index = _json(answer)
        else:
            answer = self._get("/")
            index = _json(answer)
        if answer.status_code in (401, 403):
            raise StateError(f"target {self.url}: answered {answer.status_code}; "
                             "set MLRM_TOKEN (or MLRM_TOKEN_FILE) to a token with the predict scope")  # fmt: skip
        if isinstance(index.get("models"), list):
            names = ", ".join(f"'{m.get('name')}'" for m in index["models"] if isinstance(m, dict))
            raise StateError(f"target {self.url} serves {names}, not '{self.name}' (the config set given); "
                             "pass the URL of a service that serves it, or bench one of those config sets")  # fmt: skip
        if "name" not in index:
            raise StateError(f"target {self.url}: GET / answered {answer.status_code} without an mlrm service's index; "
                             "give the base URL of an ML service (mlrm serve), not of the training service or a gateway")  # fmt: skip
        if index["name"] != self.name:
            raise StateError(f"target {self.url} serves '{index['name']}', not '{self.name}' (the config set given); "
                             f"pass the URL of the '{self.name}' service, or bench the config set of '{index['name']}'")  # fmt: skip
        if not index.get("ready"):
            raise StateError(f"target {self.url}: '{self.name}' has no trained version to answer with; train it first")
        return index

    def rtt(self, count: int) -> dict[str, float] | None:
        """Round trips of GET /v2/health/live, ms."""
        times = []
        with requests.Session() as session:
            for _ in range(count):
                started = time.perf_counter()
                answer = session.get(self.url + "/v2/health/live", headers=self.headers, timeout=TIMEOUT)
                times.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise StateError(f"target {self.url}: GET /v2/health/live answered {answer.status_code}")
        return spread(times)

    def _predict(self, session: requests.Session, body: bytes) -> tuple[float, dict[str, float]]:
        started = time.perf_counter()
        answer = session.post(self.url + self.predict_path, data=body, headers=self.headers, timeout=TIMEOUT)
        took = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise StateError(
                f"target {self.url}: POST {self.predict_path} answered {answer.status_code}: {answer.text[:400]}"
            )
        return took, server_timing(answer.headers.get("Server-Timing"))

    def latency(self, bodies: list[bytes], tick: Tick) -> dict[str, Any]:
        """Sequential predicts: round trip, compute (Server-Timing) and ingest + transport, ms."""
        trips, compute, app = [], [], []
        with requests.Session() as session:
            self._predict(session, bodies[0])  # untimed: the first answer may load the model
            for i, body in enumerate(bodies):
                took, timing = self._predict(session, body)
                trips.append(took)
                if "compute" in timing:
                    compute.append(timing["compute"])
                if "app" in timing:
                    app.append(timing["app"])
                if i % 20 == 0:
                    tick(f"latency {i}/{len(bodies)}")
        reported = len(compute) == len(trips)
        return {
            "round_trip_ms": spread(trips),
            "compute_ms": spread(compute) if reported else None,
            "ingest_transport_ms": spread([t - c for t, c in zip(trips, compute)]) if reported else None,
            "server_ms": spread(app) if len(app) == len(trips) else None,
            "split": "Server-Timing" if reported else "not reported by the target (no Server-Timing header)",
        }

    def throughput(self, bodies: list[bytes], concurrency: int, per_thread: int) -> dict[str, Any]:
        """`concurrency` threads, each sending per_thread predicts; requests/s over the level's wall time."""
        trips: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(concurrency + 1)

        def worker(k: int) -> None:
            mine = []
            with requests.Session() as session:
                start.wait()
                try:
                    for i in range(per_thread):
                        mine.append(self._predict(session, bodies[(k * per_thread + i) % len(bodies)])[0])
                except (StateError, requests.RequestException) as exc:
                    with lock:
                        failures.append(str(exc))
            with lock:
                trips.extend(mine)

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        if failures:
            raise StateError(f"target {self.url}: at concurrency {concurrency}: {failures[0]}")
        return {
            "concurrency": concurrency,
            "requests": len(trips),
            "seconds": round(wall, 3),
            "requests_per_s": round(len(trips) / wall, 1) if wall > 0 else None,
            "round_trip_ms": spread(trips),
        }


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def encode_bodies(instances: list[dict[str, Any]], batch: int, count: int) -> list[bytes]:
    """count request bodies of `batch` instances each, cycling through instances."""
    out = []
    for i in range(count):
        chunk = [instances[(i * batch + j) % len(instances)] for j in range(batch)]
        out.append(orjson.dumps({"instances": chunk}))
    return out
