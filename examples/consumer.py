"""What every example consumer shares: talking to an ML service and to the
training service over plain REST (requests), and its command-line options.

A consumer is a microservice of its own: it knows the ML service's URL and,
when there is one, the training service's URL (`--training-url`, or the
MLRM_TRAINING_URL environment variable; `mlrm status` prints it). When the
training service does not answer, the consumer keeps predicting and says
once that its samples are not sent; it tries again later.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import requests

RETRY_AFTER_S = 30.0


def options(description: str, *, seconds: float, interval: float) -> argparse.ArgumentParser:
    """The options every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the ML service (default http://127.0.0.1:8000)")
    p.add_argument(
        "--training-url",
        default=os.environ.get("MLRM_TRAINING_URL"),
        help="the training service (default: $MLRM_TRAINING_URL; none: samples are not sent)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=seconds,
        help=f"stop after this long (default {seconds:g}; 0: run until Ctrl-C)",
    )
    p.add_argument("--count", type=int, default=0, help="stop after this many readings (default: no limit)")
    p.add_argument("--interval", type=float, default=interval, help=f"seconds between readings (default {interval:g})")
    p.add_argument("--seed", type=int, default=1, help="seed of the virtual asset")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


class Clock:
    """When to stop: after --seconds or --count readings, whichever comes first."""

    def __init__(self, seconds: float, count: int) -> None:
        self.deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
        self.count, self.done = count, 0

    def tick(self) -> bool:
        """Count one reading; False when it is time to stop."""
        self.done += 1
        return time.monotonic() < self.deadline and (self.count <= 0 or self.done <= self.count)


class MlService:
    """The ML service's REST API: predict, and which version answers."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        self.version: int | None = None
        self.versions_seen: list[int] = []

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the service answers with a model; its index document."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.session.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return dict(self.session.get(self.url + "/", timeout=2).json())
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"no ready ML service at {self.url} after {timeout:g}s (is `mlrm up` or `mlrm serve` running?)"
                )
            time.sleep(0.2)

    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /v1/predict; a 4xx answer is raised with its problem detail."""
        response = self.session.post(self.url + "/v1/predict", json={"instances": rows}, timeout=self.timeout)
        body = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"predict answered {response.status_code}: {body.get('detail')}")
        version = body["model"]["version"]
        if version != self.version:
            self.versions_seen.append(version)
            self.version = version
        return dict(body)


class TrainingService:
    """The training service's REST API for one config set, forgiving when it is away.

    CONTRACT(issue 3): POST /v1/services/{name}/samples {"records": [...]} -> 202,
    POST /v1/services/{name}/train, GET /v1/services/{name}/samples/stats.
    """

    def __init__(self, url: str | None, service: str, say: Any = print, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") if url else None
        self.service, self.say, self.timeout = service, say, timeout
        self.session = requests.Session()
        self.posted = self.accepted = self.rejected = 0
        self.trains_requested = 0
        self.reachable: bool | None = None
        self._retry_at = 0.0

    @property
    def state(self) -> str:
        if self.url is None:
            return "not configured"
        return {None: "not tried", True: "reachable", False: "unreachable"}[self.reachable]

    def _call(self, method: str, path: str, body: Any = None) -> requests.Response | None:
        if self.url is None or time.monotonic() < self._retry_at:
            return None
        try:
            response = self.session.request(
                method, f"{self.url}/v1/services/{self.service}{path}", json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            if self.reachable is not False:
                self.say(
                    f"training service at {self.url} not reachable ({type(exc).__name__}): samples are not sent; retrying in {RETRY_AFTER_S:g}s"
                )
            self.reachable, self._retry_at = False, time.monotonic() + RETRY_AFTER_S
            return None
        if self.reachable is False:
            self.say(f"training service at {self.url} is back")
        self.reachable = True
        return response

    def post(self, records: list[dict[str, Any]]) -> bool:
        """Send labelled samples; True when the service took them (202)."""
        if not records:
            return True
        response = self._call("POST", "/samples", {"records": records})
        if response is None:
            return False
        if response.status_code not in (200, 201, 202):
            self.say(f"training service refused {len(records)} samples: {response.status_code} {response.text[:300]}")
            return False
        counts = response.json() if response.content else {}
        self.posted += len(records)
        self.accepted += int(counts.get("accepted", len(records)))
        rejected = counts.get("rejected", 0)  # a count, or the rejected rows with their reasons
        self.rejected += rejected if isinstance(rejected, int) else len(rejected)
        return True

    def train(self) -> dict[str, Any] | None:
        """Ask for retraining now; the service's answer (a job) or None."""
        response = self._call("POST", "/train", {})
        if response is None:
            return None
        self.trains_requested += 1
        try:
            return dict(response.json())
        except ValueError:
            return {"status": response.status_code}


def summary(**figures: Any) -> None:
    """The last line every example prints: its figures as JSON (tests read it)."""
    print("summary: " + json.dumps(figures, sort_keys=True), flush=True)
