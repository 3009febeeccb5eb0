"""The one HTTP client of the training service's API (`mlrm train --remote` and the
feedback forwarder use it), and `mlrm train --remote` itself."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from mlrm.algorithms import Progress
from mlrm.credentials import client_token
from mlrm.errors import DataError, RemoteError
from mlrm.training import csv_files

# Where an ML service finds its training service (feedback), set by `mlrm up` for its services.
TRAINING_SERVICE_ENV = "MLRM_TRAINING_SERVICE"
CA_FILE_ENV = (
    "MLRM_CA_FILE"  # PEM file of the CA (or the certificate itself) an https training service is checked against
)
CHUNK_ROWS = 5000
FINAL_STATES = ("succeeded", "failed")


class Problem(RemoteError):
    """The service answered with a problem body (4xx/5xx)."""

    def __init__(self, message: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(message, status)
        self.body = body


class TrainingServiceClient:
    """Calls one training service; every failure is a RemoteError that says what went wrong.

    Not shared across fork(): its session may hold open connections.
    """

    def __init__(
        self, base_url: str, timeout: float = 30.0, ca_file: str | None = None, token_file: Path | None = None
    ) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.token_file = token_file  # None: the token MLRM_TOKEN or MLRM_TOKEN_FILE gives
        self.session = requests.Session()
        # An https training service whose certificate no system CA signed (a plant's own CA, or self-signed).
        self.verify: str | bool = ca_file or os.environ.get(CA_FILE_ENV) or True

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> TrainingServiceClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The raw answer to one request (with the client token); RemoteError when there is none."""
        try:
            # Read per call: a rotated token file is used from the next call on.
            token = client_token() if self.token_file is None else self.token_file.read_text(encoding="utf-8").strip()
            if token:
                kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
            # Per request: a session's verify loses to REQUESTS_CA_BUNDLE in the environment.
            return self.session.request(method, self.base + path, timeout=self.timeout, verify=self.verify, **kwargs)
        except requests.RequestException as exc:
            reason = f"{type(exc).__name__}: {exc}"  # the type says what failed: refused, timed out, ...
            raise RemoteError(f"cannot reach the training service at {self.base}: {reason}") from None
        except OSError as exc:
            raise RemoteError(f"{self.token_file}: cannot read the token file ({exc.strerror})") from None

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        url = self.base + path
        answer = self.send(method, path, **kwargs)
        return self._decoded(method, url, answer)

    @staticmethod
    def _decoded(method: str, url: str, answer: requests.Response) -> tuple[int, dict[str, Any]]:
        try:
            body = answer.json()
        except ValueError:
            raise RemoteError(
                f"{method} {url}: HTTP {answer.status_code}, not JSON: {answer.text[:200]}", answer.status_code
            ) from None
        if answer.status_code >= 400:
            detail = body.get("detail") or body.get("title") or answer.reason
            raise Problem(f"{method} {url}: {answer.status_code} {detail}", answer.status_code, body)
        return answer.status_code, body

    def post_samples(self, name: str, body: bytes, mimetype: str, key: str | None = None) -> dict[str, Any]:
        """Post a batch of samples; with an Idempotency-Key, a retried post is stored once."""
        headers = {"Content-Type": mimetype, **({"Idempotency-Key": key} if key else {})}
        return self.call("POST", f"/v1/services/{name}/samples", data=body, headers=headers)[1]

    def put_monitors(self, name: str, report: dict[str, Any]) -> dict[str, Any]:
        """Report what an ML service's monitors say (its drift and performance answers) for the triggers."""
        return self.call("PUT", f"/v1/services/{name}/monitors", json=report)[1]

    def current(self, name: str, etag: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
        """The current version of a service and its ETag; (None, etag) when it is still etag (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        answer = self.send("GET", f"/v1/services/{name}/current", headers=headers)
        if answer.status_code == 304:
            return None, etag
        body = self._decoded("GET", answer.url, answer)[1]
        return body, answer.headers.get("ETag")

    def bundle(self, name: str, version: int) -> dict[str, Any]:
        """The files of one stored version, each with its sha256, size and href."""
        return self.call("GET", f"/v1/services/{name}/versions/{version}/bundle")[1]

    def download(self, path: str, limit: int) -> bytes:
        """The bytes at path; RemoteError as soon as more than limit bytes arrive (nothing is kept of them)."""
        url = self.base + path
        with self.send("GET", path, stream=True) as answer:
            if answer.status_code != 200:
                self._decoded("GET", url, answer)  # raises the problem the service answered
                raise RemoteError(f"GET {url}: HTTP {answer.status_code}, expected 200", answer.status_code)
            data = bytearray()
            try:
                for chunk in answer.iter_content(1 << 16):
                    data += chunk
                    if len(data) > limit:
                        raise RemoteError(f"GET {url}: more than the {limit} bytes announced; refused")
            except requests.RequestException as exc:
                raise RemoteError(f"GET {url}: the download broke off ({type(exc).__name__}: {exc})") from None
            return bytes(data)

    def train(self, name: str) -> tuple[dict[str, Any], bool]:
        status, body = self.call("POST", f"/v1/services/{name}/train")
        return body["job"], bool(body["created"])

    def job(self, job_id: int) -> dict[str, Any]:
        return self.call("GET", f"/v1/jobs/{job_id}")[1]

    def list_samples(self, name: str, query: dict[str, Any]) -> dict[str, Any]:
        """One page of stored samples (admin); query: the selector plus state, after, limit."""
        return self.call("GET", f"/v1/services/{name}/samples", params=query)[1]

    def change_samples(self, name: str, action: str, selector: dict[str, Any]) -> dict[str, Any]:
        """quarantine, release or delete the samples the selector names (admin; audited)."""
        return self.call("POST", f"/v1/services/{name}/samples/{action}", json=selector)[1]

    def wait(
        self, job_id: int, progress: Progress | None = None, poll: float = 0.5, timeout: float = 3600
    ) -> dict[str, Any]:
        """Follow a job until it ends, reporting each new progress line."""
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            job = self.job(job_id)
            step = job.get("progress")
            if progress and step and (step["stage"], step["message"]) != seen:
                seen = (step["stage"], step["message"])
                progress(step["stage"], step["fraction"], step["message"])
            if job["state"] in FINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise RemoteError(f"job {job_id} did not finish within {timeout:.0f}s (state {job['state']})")
            time.sleep(poll)


def service_name(config_set: str) -> str:
    """The service name of a config set folder, or the argument itself when it is just a name."""
    if Path(config_set, "service.yaml").is_file():
        from mlrm.config import load_config_set

        return load_config_set(config_set).name
    if "/" in config_set or not config_set:
        raise DataError(f"{config_set}: no service.yaml there; pass a config set folder or a service name")
    return config_set


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Uploader:
    """Posts one file in chunks and reports on it as `mlrm train --data` does locally."""

    def __init__(self, client: TrainingServiceClient, name: str, path: Path) -> None:
        self.client, self.name, self.path = client, name, path
        self.accepted = self.rejected = self.shown = 0
        self.notes: set[str] = set()

    def run(self) -> tuple[int, int]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"no such data file: {self.path}") from None
        text, notes = csv_files.decode(raw)
        self._notes([(n.line, n.text) for n in notes])
        try:
            upload = csv_files.Upload.of(text)
        except csv_files.CsvError as exc:
            raise exc.at(self.path) from None
        digest = hashlib.sha256(raw).hexdigest()[:16]
        # An empty or header-only file is posted too: the service says what it lacks, as `mlrm train` would.
        for start in range(0, max(len(upload.spans), 1), CHUNK_ROWS):
            self._post(upload, start, upload.chunk(start, start + CHUNK_ROWS), f"mlrm-train-{digest}-{start}")
        if self.rejected > self.shown:
            _say(csv_files.more_rejected(self.rejected - self.shown))
        return self.accepted, self.rejected

    def _post(self, upload: csv_files.Upload, start: int, chunk: str, key: str) -> None:
        try:
            answer = self.client.post_samples(self.name, chunk.encode(), "text/csv", key)
        except Problem as exc:
            kind = str(exc.body.get("type", "")).rsplit("/", 1)[-1]
            errors = exc.body.get("errors") or []
            if kind in ("invalid-csv", "malformed-csv") and errors and errors[0].get("line"):
                first = errors[0]
                raise csv_files.CsvError(upload.file_line(start, first["line"]), first["detail"], self.path) from None
            if kind != "invalid-samples":
                raise
            # No usable row in this chunk: nothing of it was stored; report it and go on with the rest.
            rows = min(CHUNK_ROWS, len(upload.spans) - start)
            by_row: dict[int, list[dict[str, Any]]] = {}
            for error in errors:
                by_row.setdefault(int(error["pointer"].split("/")[2]), []).append(error)
            self._rejected(upload, start, sorted(by_row.items()))
            self.rejected += rows
            return
        self.accepted += answer["accepted"]
        self.rejected += answer["rejected"]
        self._rejected(upload, start, [(r["index"], r["errors"]) for r in answer["rows"] if r["status"] == "rejected"])
        self._notes([(upload.file_line(start, n["line"]), n["detail"]) for n in answer.get("notes", [])])

    def _rejected(self, upload: csv_files.Upload, start: int, rows: list[tuple[int, list[dict[str, Any]]]]) -> None:
        for index, errors in rows[: max(0, csv_files.SHOWN_ROWS - self.shown)]:
            line = upload.spans[start + index][0]
            for error in errors:
                _say(csv_files.rejected_message(self.path, line, error["pointer"], error["detail"]))
            self.shown += 1

    def _notes(self, notes: list[tuple[int, str]]) -> None:
        for line, text in notes:
            if text not in self.notes:
                self.notes.add(text)
                _say(csv_files.Note(line, text).at(self.path))


def upload_csv(client: TrainingServiceClient, name: str, path: Path) -> tuple[int, int]:
    """Post a CSV file in chunks; keys derived from the file make a rerun count once. (accepted, rejected rows)."""
    return _Uploader(client, name, path).run()


def warn_absent_labels(client: TrainingServiceClient, name: str) -> None:
    """The warning `mlrm train` prints for a label of target.labels that no stored sample has."""
    from mlrm.training.trainer import absent_label_warning

    stats = client.call("GET", f"/v1/services/{name}/samples/stats")[1]
    for label, count in (stats.get("labels") or {}).items():
        if count == 0:
            _say(absent_label_warning(label))


def train_remote(args: argparse.Namespace) -> int:
    """`mlrm train CONFIG_SET --remote URL [--data FILE.csv]`: post data, start a job, follow it."""
    if args.dry_run:
        raise DataError("--dry-run works only locally; the training service always keeps its runs on record")
    name = service_name(args.config_set)
    with TrainingServiceClient(args.remote) as client:
        return _train(client, args, name)


def _train(client: TrainingServiceClient, args: argparse.Namespace, name: str) -> int:
    from mlrm.training.progress import ProgressPrinter

    if args.data:
        accepted, rejected = upload_csv(client, name, Path(args.data))
        print(f"posted {args.data}: {accepted} samples accepted, {rejected} rejected", flush=True)
        if not accepted:  # no job: the service would train on what it had, not on this file
            raise DataError(csv_files.nothing_accepted(args.data, rejected))
    warn_absent_labels(client, name)
    job, created = client.train(name)
    what = "queued" if created else "joined the running"
    print(f"{what} job {job['id']} for '{name}': {client.base}/v1/jobs/{job['id']}", flush=True)
    with ProgressPrinter() as progress:
        job = client.wait(int(job["id"]), progress)
    if job["state"] != "succeeded":
        print(f"job {job['id']} failed: {job['error']}", flush=True)
        return 1
    result = job["result"]
    metric = result["metric"]
    current = (result.get("current_metrics") or {}).get(metric)
    print(f"candidate {metric} {result['candidate_metrics'][metric]:.4f}"
          + (f" vs current {current:.4f} on the same holdout" if current is not None else ""), flush=True)  # fmt: skip
    verdict = "promoted: now current" if result["promoted"] else "refused: kept on record, not current"
    print(f"version {result['version']} {verdict} ({result['reason']})", flush=True)
    return 0
