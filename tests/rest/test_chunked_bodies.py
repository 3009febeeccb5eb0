"""The ML service bounds a chunked body as it bounds one with a Content-Length
(issue 13: under gunicorn a chunked body was cut at the limit, not refused).

Through the real `mlrm serve` on a socket: predict (which the fast route
hands to Flask when it comes chunked), OIP infer and feedback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import requests

from tests.toolkit import raw_http
from tests.toolkit.files import configure
from tests.toolkit.processes import free_port

Row = dict[str, Any]
LIMIT = 16 * 1024
INFER = "/v2/models/pcb-inspection/infer"


def test_a_chunked_body_over_the_limit_is_a_413_on_every_route_that_reads_one(
    serve: Any, config_set: Path, pcb_rows: list[Row]
) -> None:
    configure(
        config_set,
        limits={"max_body_bytes": LIMIT},
        feedback={"training_service": f"http://127.0.0.1:{free_port()}"},  # nothing listens: entries stay
    )
    url, process = serve(config_set)
    instances = [{k: v for k, v in r.items() if k != "result"} for r in pcb_rows]
    bodies = {
        "/v1/predict": {"instances": instances[:500]},
        INFER: {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [500, 16],
                    "datatype": "FP64",
                    "data": [list(i.values()) for i in instances[:500]],
                }
            ]
        },  # fmt: skip
        "/v1/feedback": {"records": pcb_rows[:500]},
    }
    for path, body in bodies.items():
        data = orjson.dumps(body)
        assert len(data) > 2 * LIMIT
        for size in (4096, LIMIT + 1):
            reply = raw_http.post(url, path, "application/json", raw_http.chunked(data, size))
            assert reply.status == 413, (path, reply.body)
            assert reply.headers["content-type"] == "application/problem+json"
            assert f"the limit is {LIMIT} bytes (limits.max_body_bytes)" in reply.json()["detail"]
    assert requests.get(f"{url}/v1/feedback", timeout=10).json()["pending"] == 0  # nothing of it was kept
    assert "unhandled error" not in process.output()


def test_a_chunked_body_within_the_limit_is_answered_whole(serve: Any, config_set: Path, pcb_rows: list[Row]) -> None:
    configure(config_set, limits={"max_body_bytes": LIMIT})
    url, _ = serve(config_set)
    instances = [{k: v for k, v in r.items() if k != "result"} for r in pcb_rows[:20]]
    data = orjson.dumps({"instances": instances})
    assert len(data) < LIMIT
    reply = raw_http.post(url, "/v1/predict", "application/json", raw_http.chunked(data, 333))
    assert reply.status == 200, reply.body
    assert len(reply.json()["predictions"]) == 20
