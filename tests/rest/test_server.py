"""End to end: the real `mlrm serve` (gunicorn) over HTTP on loopback, a set alone or grouped with others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.toolkit.files import copy_config_set
from tests.toolkit.layouts import Layout


def test_serve_predicts_over_http(
    serve: Any, config_set: Path, pcb_instance: dict[str, Any], layout: Layout, tmp_path: Path
) -> None:
    url, _ = serve(layout.sets(config_set, tmp_path), "--workers", "2")
    assert requests.get(f"{url}/v2/health/ready", timeout=5).json()["ready"] is True
    answer = requests.post(
        f"{layout.v1(url, 'pcb-inspection')}/predict", json={"instances": [pcb_instance] * 3}, timeout=5
    )
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["predictions"]) == 3
    assert body["model"] == {"name": "pcb-inspection", "version": 1}
    assert set(body["probabilities"][0]) == {"OK", "error", "pseudo-error"}


def test_metrics_add_up_across_workers(
    serve: Any, config_set: Path, pcb_instance: dict[str, Any], layout: Layout, tmp_path: Path
) -> None:
    url, _ = serve(layout.sets(config_set, tmp_path), "--workers", "2")
    for _ in range(20):
        answer = requests.post(
            f"{layout.v1(url, 'pcb-inspection')}/predict", json={"instances": [pcb_instance]}, timeout=5
        )
        answer.raise_for_status()
    text = requests.get(f"{url}/metrics", timeout=5).text
    start = f'mlrm_requests_total{{endpoint="{layout.predict_rule}",method="POST",model="pcb-inspection",status="200"}}'
    line = next(x for x in text.splitlines() if x.startswith(start))
    assert line.endswith(" 20.0")
    assert 'mlrm_model_version{model="pcb-inspection"} 1.0' in text


def test_untrained_set_starts_not_ready_and_says_how_to_train(serve: Any, tmp_path: Path, layout: Layout) -> None:
    folder = copy_config_set("pcb-inspection", tmp_path, learned=False)
    url, _ = serve(layout.sets(folder, tmp_path))
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 503
    answer = requests.post(f"{layout.v1(url, 'pcb-inspection')}/predict", json={"instances": [{}]}, timeout=5)
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "mlrm train" in answer.json()["detail"]


def test_openmp_model_answers_in_every_forked_worker(
    serve: Any, tmp_path: Path, pcb_rows: list, pcb_instance: Any
) -> None:
    """HistGradientBoosting uses OpenMP; its pool must not be inherited across gunicorn's fork."""
    from mlrm.config import load_config_set
    from mlrm.training import trainer

    folder = copy_config_set("pcb-inspection", tmp_path, learned=False)
    text = (folder / "service.yaml").read_text()
    start = text.index("algorithm:")
    end = text.index("preprocessing:")
    text = (
        text[:start]
        + "algorithm:\n  name: hist_gradient_boosting_classifier\n  hyperparameters: {max_iter: 30}\n\n"
        + text[end:]
    )
    (folder / "service.yaml").write_text(text)
    trainer.train(load_config_set(folder), pcb_rows[:500])
    url, _ = serve(folder, "--workers", "2")
    with requests.Session() as session:
        for _ in range(20):
            answer = session.post(f"{url}/v1/predict", json={"instances": [pcb_instance]}, timeout=10)
            assert answer.status_code == 200


def test_a_folder_of_sets_serves_each_and_a_broken_one_answers_503_naming_the_fix(
    serve: Any, tmp_path: Path, pcb_instance: dict[str, Any]
) -> None:
    root = tmp_path / "sets"
    copy_config_set("pcb-inspection", root)
    copy_config_set("air-quality", root)
    (root / "broken").mkdir()
    (root / "broken" / "service.yaml").write_text("name: broken\nalgoritm: random_forest_classifier\n")
    url, process = serve(root, "--workers", "2")
    listed = requests.get(f"{url}/v1/models", timeout=5).json()["models"]
    assert [(m["name"], m["available"], m["ready"]) for m in listed] == [
        ("air-quality", True, True),
        ("broken", False, False),
        ("pcb-inspection", True, True),
    ]
    answer = requests.post(f"{url}/v1/models/pcb-inspection/predict", json={"instances": [pcb_instance]}, timeout=5)
    assert answer.status_code == 200 and answer.json()["model"] == {"name": "pcb-inspection", "version": 1}
    broken = requests.post(f"{url}/v1/models/broken/predict", json={"instances": [pcb_instance]}, timeout=5)
    assert broken.status_code == 503 and broken.headers["Content-Type"] == "application/problem+json"
    assert "unknown key 'algoritm'" in broken.json()["detail"] and "mlrm validate" in broken.json()["detail"]
    process.wait_until(lambda: "config set 'broken' does not load" in process.output(), 10, "reporting the broken set")
