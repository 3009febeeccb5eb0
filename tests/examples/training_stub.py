"""A stand-in for the training service's REST contract (issue 3), for the
example tests until `mlrm training-service` exists in this tree; the
`training_service` fixture uses the real one as soon as it does.

It keeps posted samples in memory and, on /train, trains with mlrm.training
(the code the real service shares) and writes a new current version into the
config set, which a running `mlrm serve` then loads by itself. No store, no
triggers, no gate, no jobs: only what a consumer calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from mlrm import training
from mlrm.config import ServiceConfig, load_config_set
from mlrm.errors import DataError


def create_stub(config_root: Path) -> Flask:
    """The stub's app over the config sets under config_root."""
    app = Flask("training-stub")
    samples: dict[str, list[dict[str, Any]]] = {}
    configs: dict[str, ServiceConfig] = {}
    lock = threading.Lock()

    def config_of(name: str) -> ServiceConfig:
        if name not in configs:
            configs[name] = load_config_set(config_root / name)
        return configs[name]

    @app.get("/v1/health")
    def health() -> Any:
        return jsonify({"ready": True})

    @app.post("/v1/services/<name>/samples")
    def post_samples(name: str) -> Any:
        records = request.get_json()["records"]
        config = config_of(name)
        data = training.dataset(config, records)
        with lock:
            samples.setdefault(name, []).extend(records)
        return jsonify({"accepted": len(data), "rejected": len(data.rejected)}), 202

    @app.get("/v1/services/<name>/samples/stats")
    def stats(name: str) -> Any:
        return jsonify({"count": len(samples.get(name, []))})

    @app.post("/v1/services/<name>/train")
    def train(name: str) -> Any:
        config = config_of(name)
        with lock:
            records = list(samples.get(name, []))
        try:
            result = training.train(config, records)
        except DataError as exc:
            return jsonify({"state": "failed", "error": str(exc)}), 422
        return jsonify({"state": "done", "version": result.version, "metrics": result.metrics}), 202

    return app


@contextmanager
def running_stub(config_root: Path, port: int) -> Iterator[str]:
    """Serve the stub on 127.0.0.1:port in a thread; yields its URL."""
    server = make_server("127.0.0.1", port, create_stub(config_root), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
