"""The dashboard in a real browser against a real gateway: `mlrm up` with the training service,
two ML services (one with 2 gunicorn workers) and the dashboard; chromium opens the page, sees
every service, sees the rates move when predictions come, sees drift per input (or why there is
none), retrains through the page and sees the new version go live with a drift window of its own,
rolls back through the page, and never logs a console error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from mlrm.credentials import create
from mlrm.tools.datasets import breast_cancer
from tests.toolkit.browser import page, require_browser, screenshot
from tests.toolkit.dashboard import start_dashboard
from tests.toolkit.files import copy_config_set, write_manifest
from tests.toolkit.gateway import status
from tests.toolkit.processes import Process, mlrm, mlrm_args
from tests.toolkit.training import NAME, weak_version

pytestmark = pytest.mark.slow


def test_dashboard_shows_the_gateway_updates_and_acts(tmp_path: Path, spawn: Callable[..., Process]) -> None:
    require_browser()
    from playwright.sync_api import expect

    rows = breast_cancer()
    weak_version(copy_config_set(NAME, tmp_path / "configs"), rows)  # version 1 is poor: retraining helps
    copy_config_set("machine-anomaly", tmp_path / "configs")
    manifest = write_manifest(
        tmp_path,
        f"""
        name: dash
        services:
          {NAME}: {{config_set: {tmp_path}/configs/{NAME}, port: 0, workers: 2}}
          machine-anomaly: {{config_set: {tmp_path}/configs/machine-anomaly, port: 0}}
        training: {{mode: local, port: 0}}
        dashboard: {{port: 0, interval: 0.5}}
        """,
    )
    up = spawn(mlrm_args("up", str(manifest)), name="up")
    up.wait_until(lambda: "stop: Ctrl-C" in up.output(), timeout=90, what="the status table")
    services = status(manifest)
    assert services["dashboard"]["ready"] == "yes", services
    dashboard, cancer = services["dashboard"]["url"], services[NAME]["url"]
    assert f"dashboard: {dashboard}/" in up.output()  # mlrm up says where to look
    assert f"dashboard: {dashboard}/" in mlrm("status", str(manifest)).stdout  # ...and so does mlrm status
    answer = requests.post(f"{services['training-service']['url']}/v1/services/{NAME}/samples",
                           json={"records": rows}, timeout=30)  # fmt: skip
    assert answer.status_code == 202, answer.text

    with page() as (opened, console):
        opened.goto(dashboard + "/")
        table = opened.locator("#services tbody")
        for name in ("training-service", NAME, "machine-anomaly"):
            expect(table.locator(f"tr[data-service='{name}'] td.state")).to_have_text("yes")
        card = opened.locator(f"section.card[data-service='{NAME}']")
        expect(card.locator(".version")).to_have_text("1")
        expect(card.locator(".samples")).to_contain_text(f"{len(rows)} stored")
        # machine-anomaly's shipped version was trained before reference profiles: the card says why.
        anomaly = opened.locator("section.card[data-service='machine-anomaly']")
        expect(anomaly.locator(".drift-summary")).to_have_text(
            "version 1 has no reference profile; retrain to record one"
        )
        expect(anomaly.locator(".performance-summary")).to_contain_text("anomaly detector")

        instances = [{k: v for k, v in r.items() if k != "diagnosis"} for r in rows[:40]]
        for i in range(0, 40, 4):  # predictions spread over a few samples of the dashboard
            answer = requests.post(f"{cancer}/v1/predict", json={"instances": instances[i : i + 4]}, timeout=10)
            assert answer.status_code == 200, answer.text
        expect(card.locator("table.labels tr[data-label='benign']")).to_be_visible()
        # Version 1 was trained here (weak_version), so it has a profile: PSI per input, too few rows for a level.
        summary = card.locator(".drift-summary")
        expect(summary).to_have_text("window: 40 rows of the 200 needed · not enough for a level yet")
        expect(card.locator("table.drift tr[data-input]").first.locator("td.level")).to_have_text("insufficient")
        expect(card.locator("table.drift tr[data-input='(predictions)']")).to_be_visible()
        rate = table.locator(f"tr[data-service='{NAME}'] td.rate")
        expect(rate).not_to_have_text("0.00")
        assert float(rate.inner_text()) > 0

        card.locator("button.retrain").click()
        expect(card.locator(".said")).to_contain_text("queued")
        expect(card.locator(".version")).to_have_text("2", timeout=60_000)  # the new version live
        job = card.locator("table.jobs tbody tr").first
        expect(job).to_contain_text("promoted")
        expect(job).to_contain_text("on_demand")
        expect(table.locator(f"tr[data-service='{NAME}'] td.version")).to_have_text("2")
        expect(summary).to_contain_text("window: 0 rows")  # a new version: a new window, against its own profile
        live = card.locator(".performance-summary")
        expect(live).to_contain_text("no feedback matched a prediction yet")
        ids = [f"row-{i}" for i in range(40)]  # predictions feedback can score: the live metric
        for i in range(0, 40, 4):
            batch = {"instances": instances[i : i + 4], "ids": ids[i : i + 4]}
            answer = requests.post(f"{cancer}/v1/predict", json=batch, timeout=10)
            assert answer.status_code == 200, answer.text
        expect(summary).to_contain_text("window: 40 rows")
        answer = requests.post(f"{cancer}/v1/feedback", json={"records": rows[:40], "ids": ids}, timeout=30)
        assert answer.status_code in (200, 202) and answer.json()["scored"] == 40, answer.text
        expect(live).to_contain_text("40 predictions scored")
        expect(live).to_contain_text("f1_macro: live")
        screenshot(opened, "dashboard.png")

        card.locator("select.rollback-version").select_option("1")
        card.locator("button.rollback").click()
        expect(card.locator(".said")).to_contain_text("version 1 is current (was 2)")
        expect(card.locator(".version")).to_have_text("1")
        assert requests.get(f"{cancer}/", timeout=5).json()["version"] == 1
        assert not console.errors, console.errors


def test_a_guarded_dashboard_asks_for_a_token_and_then_shows_the_gateway(
    tmp_path: Path, spawn: Callable[..., Process]
) -> None:
    require_browser()
    from playwright.sync_api import expect

    tokens = tmp_path / "tokens.yaml"
    watch = create(tokens, "wall", ["metrics"])
    url, _ = start_dashboard(spawn, tmp_path, "--tokens", str(tokens))
    with page() as (opened, console):
        opened.goto(url + "/")
        expect(opened.locator("#login")).to_be_visible()
        expect(opened.locator("#login-error")).to_contain_text("scope 'metrics'")
        opened.fill("#token", watch)
        opened.click("#login button")
        expect(opened.locator("#title")).to_have_text("gateway g")
        expect(opened.locator("#login")).to_be_hidden()
        # The refused first poll is the one error the page may log (the browser reports every 401).
        assert all("401" in error for error in console.errors), console.errors
