"""The example application in a real browser (Debian's chromium, headless): a stale
tab's delete is met with the re-authentication prompt and allowed after it; a logout
in one tab gets the other tab's API call refused. Screenshots go to test-output/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from doublelock.policy import parse_policy
from examples.webapp.__main__ import POLICY, serve
from examples.webapp.app import ExampleApp
from sdk import Doublelock, Lifecycle

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"  # Debian's; .ci/run installs it
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "example-app"
# The example's policy with the delete's window cut to seconds, so a tab goes stale
# within the test.
STALE_AFTER_S = 3
TEST_POLICY = POLICY.read_text().replace('reauth_within = "1m"',
                                         f'reauth_within = "{STALE_AFTER_S}s"')


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_stale_tab_step_up_and_logout_in_another_tab(start_worker: Any,
                                                     browser: Browser) -> None:
    assert 'reauth_within = "1m"' in POLICY.read_text()  # the replace above took
    worker = start_worker(TEST_POLICY)
    with Doublelock("example-test", worker.settings, timeout_s=10) as dl, \
            Lifecycle(worker.settings) as lifecycle:
        server = serve(ExampleApp(dl, lifecycle, parse_policy(TEST_POLICY.encode())), port=0)
        url = f"http://127.0.0.1:{server.server_port}/"
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 640})
            tab = context.new_page()
            tab.goto(url)
            tab.fill("input[name=password]", "wonderland")
            tab.click("#login button[type=submit]")
            expect(tab.locator("#user")).to_have_text("alice")
            signed_in = time.monotonic()
            expect(tab.locator("tr[data-project]")).to_have_count(2)
            expect(tab.locator("#idle-left")).to_have_text(re.compile(r"1[45]:\d\d"))
            shot(tab, "1-projects")

            # The tab goes stale: its sign-in is older than the delete's window.
            time.sleep(max(0.0, STALE_AFTER_S + 0.5 - (time.monotonic() - signed_in)))
            tab.click("tr[data-project=p1] button.delete")
            prompt = tab.locator("#reauth")
            expect(prompt).to_be_visible()
            expect(tab.locator("#reauth-why")).to_contain_text(f"within the last {STALE_AFTER_S} s")
            expect(tab.locator("tr[data-project=p1]")).to_have_count(1)  # not deleted
            shot(tab, "2-reauth-prompt")
            tab.fill("#reauth input[name=password]", "wonderland")
            tab.click("#reauth-submit")
            expect(prompt).to_be_hidden()
            expect(tab.locator("tr[data-project=p1]")).to_have_count(0)
            expect(tab.locator("#status")).to_have_text("Project Apollo deleted.")
            shot(tab, "3-deleted-after-reauth")

            # A second tab of the same login; the first one logs out.
            other = context.new_page()
            other.goto(url)
            expect(other.locator("tr[data-project=p2]")).to_have_count(1)
            tab.click("#logout")
            expect(tab.locator("#login")).to_be_visible()
            other.fill("tr[data-project=p2] input[name=new_owner]", "bob")
            other.click("tr[data-project=p2] .transfer button")
            expect(other.locator("#status")).to_have_text(re.compile(r"Refused \(403\): revoked"))
            expect(other.locator("tr[data-project=p2]")).to_have_count(1)  # not transferred
            shot(other, "4-refused-after-logout")
            context.close()
        finally:
            server.shutdown()
