"""`mlrm bench` from an installed wheel, outside the repository, on every shipped config set.

The wheel is built from a copy of this checkout's sources and installed with
--no-deps into a folder of its own (its dependencies are the test venv's);
`mlrm` then runs from a temporary folder with only that folder on
PYTHONPATH, so nothing can come from the checkout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.toolkit.brokers import MOSQUITTO, Broker
from tests.toolkit.files import CONFIGS, ROOT

SETS = sorted(p.name for p in CONFIGS.iterdir() if (p / "service.yaml").is_file())
TORCH_SETS = {"worker-activity"}
MQTT_SET = "machine-anomaly"  # also measured over MQTT through a real broker, when mosquitto is installed


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed wheel (mlrm/, training_service/, bin/mlrm)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("mlrm", "training_service"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), str(source)],
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    (wheel,) = (base / "dist").glob("mlrm-*.whl")
    target = base / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return target


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(errors="replace") for p in sorted(folder.rglob("*.yaml"))}


def outside(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")}
    return {**env, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_bench_runs_from_the_wheel_on_every_shipped_set(installed: Path, tmp_path: Path, name: str) -> None:
    if name in TORCH_SETS and importlib.util.find_spec("torch") is None:
        pytest.skip(f"{name} trains a torch network: pip install 'mlrm[torch]'")
    shutil.copytree(CONFIGS / name, tmp_path / name)
    env = outside(installed)
    where = subprocess.run([sys.executable, "-c", "import mlrm; print(mlrm.__file__)"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(installed)), where.stdout  # the wheel's mlrm, not the checkout's
    broker = Broker(tmp_path / "broker") if name == MQTT_SET and Path(MOSQUITTO).is_file() else None
    args = ["bench", name, "--quick", "--json", "out.json", *(["--mqtt-broker", broker.url] if broker else [])]
    if broker:
        broker.start()
    try:
        done = subprocess.run([str(installed / "bin" / "mlrm"), *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    finally:
        if broker:
            broker.stop()
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["config_set"]["name"] == name and report["training"]["rows"] > 0
    assert report["training"]["train_s"] > 0 and report["training"]["peak_rss_mib"] > 0
    (local,) = report["targets"]
    assert local["name"] == "local" and local["version"] == report["training"]["version"]
    assert local["latency"]["compute_ms"]["n"] == 20 and [x["requests"] for x in local["throughput"]] == [10, 40]
    assert local["server"]["peak_pss_mib"] > 0
    assert fingerprint(tmp_path / name) == fingerprint(CONFIGS / name)  # trained and served a copy
    if broker:
        mqtt = local["mqtt"]
        assert (mqtt["publish_on"], mqtt["answers_on"]) == (f"mlrm/{name}/predict", f"mlrm/{name}/predictions")
        assert mqtt["round_trip_ms"]["n"] == mqtt["compute_ms"]["n"] == 20
