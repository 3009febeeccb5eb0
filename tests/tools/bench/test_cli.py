"""`mlrm bench` against real services: two `mlrm serve` targets side by side (training, a local serve and MQTT:
test_wheel.py, from the installed wheel)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.toolkit.files import copy_config_set
from tests.toolkit.processes import ROOT, Process, env, free_port, mlrm_args

Serve = Callable[..., tuple[str, Process]]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mlrm_args("bench", *args), capture_output=True, text=True, env=env(), cwd=ROOT, timeout=240)


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def check_target(target: dict[str, Any], levels: list[int]) -> None:
    assert target["rtt_ms"]["n"] == 10 and target["rtt_ms"]["median"] > 0
    latency = target["latency"]
    assert latency["split"] == "Server-Timing"
    assert latency["round_trip_ms"]["n"] == latency["compute_ms"]["n"] == latency["ingest_transport_ms"]["n"] == 20
    assert [x["concurrency"] for x in target["throughput"]] == levels
    assert [x["requests"] for x in target["throughput"]] == [c * 10 for c in levels]
    assert all(x["requests_per_s"] > 0 for x in target["throughput"])


def test_two_targets_side_by_side(tmp_path: Path, serve: Serve, spawn: Callable[..., Process]) -> None:
    folder = copy_config_set("pcb-inspection-lr", tmp_path)
    before = fingerprint(folder)
    edge, _ = serve(folder)
    # The central site serves several sets in one process: bench finds this one at /v1/models/NAME.
    port = free_port()
    central = f"http://127.0.0.1:{port}"
    both = spawn(mlrm_args("serve", str(folder), str(copy_config_set("breast-cancer", tmp_path)), "--port", str(port)))
    both.wait_http(f"{central}/v2/health/live")
    out, page = tmp_path / "bench.json", tmp_path / "bench.html"
    done = bench(str(folder), "--quick", "--no-train", "--target", edge, "--target", central,
                 "--json", str(out), "--html", str(page))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert [t["name"] for t in report["targets"]] == [edge, central]
    for target in report["targets"]:
        check_target(target, [1, 4])
        assert target["version"] == 1 and not target["local"]
        # Both listen on this machine's loopback: their process trees are found and sampled.
        assert target["server"]["peak_pss_mib"] > 0 and target["server"]["processes"] >= 2
    assert {t["predict"] for t in report["targets"]} == {"/v1/models/pcb-inspection-lr/predict"}
    assert report["training"] is None and report["config_set"]["name"] == "pcb-inspection-lr"
    if importlib.util.find_spec("codecarbon") is None:
        assert report["energy"] == {
            "measured": False,
            "note": "energy: not measured (install mlrm[bench] for codecarbon)",
        }
        assert all(t["energy"] is None for t in report["targets"])
        assert "energy: not measured (install mlrm[bench]" in done.stdout
    assert any(edge in line and central in line for line in done.stdout.splitlines())  # one column each
    assert "compute ms (Server-Timing)" in done.stdout and "requests/s at concurrency 4" in done.stdout
    html = page.read_text()
    assert html.count("<svg") >= 4 and "<script" not in html and "src=" not in html
    assert "throughput: " in done.stderr  # the progress lines
    assert fingerprint(folder) == before  # the config set and its versions were not touched

    wrong = bench(str(ROOT / "configs" / "breast-cancer"), "--quick", "--no-train", "--target", edge)
    assert wrong.returncode == 1
    assert f"target {edge} serves 'pcb-inspection-lr', not 'breast-cancer'" in wrong.stderr
    wrong = bench(str(ROOT / "configs" / "air-quality"), "--quick", "--no-train", "--target", central)
    assert wrong.returncode == 1
    assert f"target {central} serves 'breast-cancer', 'pcb-inspection-lr', not 'air-quality'" in wrong.stderr
