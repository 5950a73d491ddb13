"""The operator console in a real browser: Debian's Chromium, driven by Playwright.

An operator logs in with the token, watches a call appear on the Now page while a
scenario runs on the emulators, opens the call's timeline once it has ended, and
retries a record the dashboard refused — and sees it delivered.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from emulators.faults import Fault, FaultKind
from emulators.scenario import load_scenario
from tests.stack import stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-console-token-0123456789"
WAIT_MS = 60_000

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium; "
        ".ci/run installs it)",
    ),
]


@asynccontextmanager
async def browser_page() -> AsyncIterator:
    """A page of a fresh headless Chromium, closed afterwards."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            await browser.close()


async def reload_until(page, url: str, selector: str, *, seconds: float = 60.0):
    """Open ``url`` again until ``selector`` is on it (the server's state is still moving)."""
    with anyio.fail_after(seconds):
        while True:
            await page.goto(url)
            found = page.locator(selector)
            if await found.count():
                return found
            await anyio.sleep(0.5)


async def test_an_operator_watches_a_call_opens_its_timeline_and_retries_a_dead_letter(
    tmp_path,
):
    async with stack(tmp_path, CONSOLE_TOKEN=TOKEN) as world, browser_page() as page:
        dashboard = world.world.emulators["dashboard"]
        # The dashboard refuses the call's job record once, for good: a dead letter.
        dashboard.faults.add(Fault(kind=FaultKind.ERROR, route="jobs", status=422, times=1))

        await page.goto(world.url + "/console")
        await page.fill("#token", TOKEN)
        await page.click("#login")
        await page.wait_for_url("**/console/now")
        assert await page.locator("#no-live-calls").count() == 1

        results = []

        async def call() -> None:
            scenario = load_scenario("returning_customer_books")
            results.append(await world.run(scenario, settle_seconds=3))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            # The page refreshes itself (no reload); a call answers with its business.
            row = page.locator('#live-calls tr[data-call-sid]:has-text("Bayside")').first
            await row.wait_for()
            call_sid = await row.get_attribute("data-call-sid")
            live_cells = await row.locator("td").all_text_contents()
        (result,) = results

        assert call_sid == result.report.call_sid
        assert live_cells[1] == "Bayside Plumbing & Heating"
        assert live_cells[2] == "•••••••0123"  # the caller's number, masked
        assert live_cells[5] in ("inworld", "deepgram_tts")

        await page.locator("#no-live-calls").wait_for()  # gone from Now once it ended
        link = await reload_until(
            page, world.url + "/console/calls", f'#recent-calls tr[data-call-sid="{call_sid}"] a'
        )
        await link.click()
        await page.wait_for_url(f"**/console/calls/{call_sid}")
        states = [
            await g.get_attribute("data-label")
            for g in await page.locator("#timeline g.state").all()
        ]
        tools = await page.locator("#timeline g.tool text").all_text_contents()
        assert states == ["greeting", "identify", "collect_job", "book", "wrap_up"]
        assert "book_slot" in tools
        assert await page.locator("#timeline g.turn").count() >= 3
        lines = await page.locator("#transcript tr").all_inner_texts()
        assert len(lines) >= 8 and all("hidden" in line for line in lines)
        assert "bot" in lines[0] and any("caller" in line for line in lines)
        shown = await page.locator("main").inner_text()
        assert "Dana" not in shown and "kitchen sink" not in shown and "Oak" not in shown
        await page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

        dead = await reload_until(
            page, world.url + "/console/outbox", f'#dead tr:has(a:text("{call_sid}"))'
        )
        assert "HTTP 422" in await dead.inner_text()
        assert dashboard.received("jobs") == []
        await dead.locator("button.retry").click()
        await page.wait_for_url(re.compile(r".*/console/outbox\?retried=1$"))
        assert await page.locator("#retried").inner_text() == "1 dead letter queued again."
        await reload_until(page, world.url + "/console/outbox", "#no-dead")
        await reload_until(page, world.url + "/console/outbox", "#no-pending")

    (job,) = dashboard.received("jobs")
    assert job["body"]["call_sid"] == call_sid
