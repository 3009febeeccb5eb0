"""A small HTTP client of the training service, and `mlrm train --remote`."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import time
from pathlib import Path
from typing import Any

import requests

from mlrm.algorithms import Progress
from mlrm.errors import DataError, RemoteError

CHUNK_ROWS = 5000
FINAL_STATES = ("succeeded", "failed")


class Client:
    """Calls one training service; every failure is a RemoteError that says what went wrong."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        url = self.base + path
        try:
            answer = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise RemoteError(f"cannot reach the training service at {self.base}: {exc}") from None
        try:
            body = answer.json()
        except ValueError:
            raise RemoteError(
                f"{method} {url}: HTTP {answer.status_code}, not JSON: {answer.text[:200]}", answer.status_code
            ) from None
        if answer.status_code >= 400:
            detail = body.get("detail") or body.get("title") or answer.reason
            raise RemoteError(f"{method} {url}: {answer.status_code} {detail}", answer.status_code)
        return answer.status_code, body

    def post_samples(self, name: str, body: bytes, mimetype: str, key: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": mimetype, **({"Idempotency-Key": key} if key else {})}
        return self.call("POST", f"/v1/services/{name}/samples", data=body, headers=headers)[1]

    def train(self, name: str) -> tuple[dict[str, Any], bool]:
        status, body = self.call("POST", f"/v1/services/{name}/train")
        return body["job"], bool(body["created"])

    def job(self, job_id: int) -> dict[str, Any]:
        return self.call("GET", f"/v1/jobs/{job_id}")[1]

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


def upload_csv(client: Client, name: str, path: Path) -> tuple[int, int]:
    """Post a CSV file in chunks; keys derived from the file make a rerun count once. (accepted, rejected)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such data file: {path}") from None
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    if len(rows) < 2:
        raise DataError(f"{path}: expected a header line and at least one row")
    header, body = rows[0], [r for r in rows[1:] if r and r != [""]]
    digest = hashlib.sha256(raw).hexdigest()[:16]
    accepted = rejected = 0
    for start in range(0, len(body), CHUNK_ROWS):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body[start : start + CHUNK_ROWS])
        try:
            answer = client.post_samples(name, buffer.getvalue().encode(), "text/csv", f"mlrm-train-{digest}-{start}")
        except RemoteError as exc:
            if exc.status != 422:  # a chunk with no usable row: report it, go on with the rest
                raise
            print(f"rows {start + 1}-{start + CHUNK_ROWS}: {exc}", flush=True)
            rejected += len(body[start : start + CHUNK_ROWS])
            continue
        accepted += answer["accepted"]
        rejected += answer["rejected"]
        for row in [r for r in answer["rows"] if r["status"] == "rejected"][:10]:
            for error in row["errors"][:1]:
                print(f"rejected line {start + row['index'] + 2}: {error['pointer']}: {error['detail']}", flush=True)
    return accepted, rejected


def train_remote(args: argparse.Namespace) -> int:
    """`mlrm train CONFIG_SET --remote URL [--data FILE.csv]`: post data, start a job, follow it."""
    from mlrm.progress import ProgressPrinter

    if args.dry_run:
        raise DataError("--dry-run works only locally; the training service always keeps its runs on record")
    name = service_name(args.config_set)
    client = Client(args.remote)
    if args.data:
        accepted, rejected = upload_csv(client, name, Path(args.data))
        print(f"posted {args.data}: {accepted} samples accepted, {rejected} rejected", flush=True)
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
