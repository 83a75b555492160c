"""The web dashboard in a real browser (Debian's chromium, headless) over planted
history on chdb, and ``doublelock report`` over the same store. Screenshots go to
test-output/dashboard/."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from dashboards.panels import PANELS
from dashboards.store import Store
from dashboards.web import serving
from tests.history import WINDOW, load, planted

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "dashboard"
RANGE = "from=2026-05-12T00:00:00&to=2026-05-13T00:00:00"


@pytest.fixture(scope="module")
def history_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    dsn = f"chdb://{tmp_path_factory.mktemp('dashboard') / 'ch'}"
    store = Store(dsn)
    store.migrate(retention_days=0)
    load(store, planted())
    store.close()  # one owner at a time: each test opens it again
    return dsn


@pytest.fixture
def served(history_dsn: str) -> Iterator[str]:
    """The dashboard over the history, on a loop of its own; its URL."""
    store = Store(history_dsn)
    try:
        with serving(store) as dashboard:
            yield dashboard.url
    finally:
        store.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_every_panel_renders_filters_change_it_and_drill_down_opens(served: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{served}?{RANGE}")
        page.wait_for_function("Number(document.body.dataset.loaded) >= 1", timeout=30_000)
        cards = [p.name for p in PANELS if p.chart != "kpis"]
        for name in cards:  # every panel has rows, none failed
            rows = page.get_attribute(f'[data-panel="{name}"]', "data-rows")
            assert rows is not None and rows.isdigit() and int(rows) > 0, (name, rows)
        expect(page.locator('[data-panel="blocks_over_time"] canvas')).to_have_count(1)
        expect(page.locator('[data-panel="stale_tab_delay"] canvas')).to_have_count(1)
        expect(page.locator(".heat div[title^='Tue 10:00']")).to_have_text("41")
        expect(page.locator("#kpi-blocked")).to_have_text("104")
        expect(page.locator('[data-panel="burst_sources"] tbody tr')).to_have_count(3)
        shot(page, "1-overview")

        # A filter changes the data: only the crm app.
        page.select_option("#filters select[name=app]", "crm")
        page.click("#filters button[type=submit]")
        page.wait_for_function("Number(document.body.dataset.loaded) >= 2", timeout=30_000)
        expect(page.locator("#kpi-blocked")).to_have_text("6")
        expect(page.locator('[data-panel="verdict_ratio"] tbody tr')).to_have_count(1)
        expect(page.locator('[data-panel="burst_sources"] .empty')).to_be_visible()
        shot(page, "2-filtered-crm")

        # Drill down from a top IP to its attempts, with their evidence.
        page.select_option("#filters select[name=app]", "")
        page.click("#filters button[type=submit]")
        page.wait_for_function("Number(document.body.dataset.loaded) >= 3", timeout=30_000)
        page.click('[data-panel="top_ips"] a[data-drill=ip] >> text="203.0.113.66"')
        drill = page.locator("#drill")
        expect(drill).to_be_visible()
        expect(page.locator("#drill-title")).to_have_text("Blocked attempts · ip 203.0.113.66")
        expect(drill.locator("tbody tr")).to_have_count(40)
        expect(drill.locator("thead")).to_contain_text("dead for ms")
        shot(page, "3-drill-down")
        assert errors == []
        browser.close()


def test_the_json_endpoints(served: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{served}api/panels") as answer:
        listed = json.load(answer)
    assert [p["name"] for p in listed] == [p.name for p in PANELS]
    with urllib.request.urlopen(f"{served}api/panels/top_ips?{RANGE}&limit=1") as answer:
        body = json.load(answer)
    assert body["rows"] == [{"ip": "203.0.113.66", "blocked": 40, "sessions": 40,
                             "top_reason": "unknown_session",
                             "last_blocked": "2026-05-12T10:02:57Z"}]
    for bad in ("api/panels/nope", "api/panels/heatmap?from=2026-05-14T00:00:00&to=2026-05-13",
                f"api/panels/heatmap?{RANGE}&limit=3",
                "api/panels/top_ips?from=99999999999999999999",
                f"api/panels/top_ips?{RANGE}&limit=-1", f"api/panels/top_ips?{RANGE}&limit=0",
                f"api/panels/top_ips?{RANGE}&limit=99999999999",
                f"api/panels/burst_sources?{RANGE}&window=0", "api/filters?from=0001-01-01"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{served}{bad}")
        assert refused.value.code in (400, 404)


def test_report_prints_the_patterns(history_dsn: str) -> None:
    def report(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "workers.cli", "report", "--clickhouse", history_dsn,
             "--dashboard", "", "--from", WINDOW.start.isoformat(), "--to",
             WINDOW.end.isoformat(), *args], cwd=ROOT, capture_output=True, text=True,
            check=True).stdout

    text = report()
    for panel in PANELS:
        if panel.name != "attempts":
            assert panel.title in text, panel.title
    assert "203.0.113.66" in text and "sleepy" in text
    data: Any = json.loads(report("--format", "json", "--panel", "stale_tabs", "--app", "crm"))
    assert data["app"] == "crm" and list(data["panels"]) == ["stale_tabs"]
    assert [r["user_id"] for r in data["panels"]["stale_tabs"]] == ["sleepy"]
