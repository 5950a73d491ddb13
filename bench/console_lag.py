"""Does the operator console slow calls? Event-loop lag in a wave, with and without it open.

Run from the repository root::

    .venv/bin/python -m bench.console_lag [--calls 25] [--browser]

One emulator world and one ``main.py serve`` (``CONSOLE_TOKEN`` set) take two waves of
``--calls`` calls each, placed as ``make bench`` places them (0.1 s apart, every 5th
barging in), by the same load generators:

1. **without** the console: nobody looks;
2. **with** the console's Now page open: a logged-in client fetches ``/console/now``
   once, then its live fragment every 2 s — what the page's script does — and times
   each answer. ``--browser`` opens the page in Debian's Chromium instead (which then
   shares the machine's cores with the server).

With ``--rounds N`` the two alternate N times (closed, open, closed, open...), so that
neither always runs on a warmer server. First, in this process, the time one refresh
of the Now page takes on the event loop with ``--calls`` live calls (gathering its
data from in-memory sources and rendering the fragment) is measured over many
refreshes: the console's own cost, free of the machine's noise.

Per wave: the server's event-loop lag (``frontdesk_event_loop_lag_seconds``, from
``/metrics`` before and after: p50, p99 and the share of 50 ms ticks more than 10 ms
and 40 ms late), the callers' late bot audio and turn latency, and the console's
answer times. Writes ``bench/results/console_lag.json``. On a shared 2-core machine the
two waves differ by noise as much as by the console: compare several runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.envfile import read_env_file
from bench.report import (
    bucket_deltas,
    caller_side,
    histogram_buckets,
    histogram_quantile,
    percentile,
)
from bench.run import Bench, drive, wait_idle, wave_plan
from bench.sample import Sampler, scrape
from bench.servers import ROOT, start_frontdesk, start_world

logger = logging.getLogger("bench")

LAG = "frontdesk_event_loop_lag_seconds"
TOKEN = "bench-console-token-0123456789"
POLL_SECONDS = 2.0
SETTLE_SECONDS = 3.0
RESULTS = ROOT / "bench" / "results" / "console_lag.json"


def lag_figures(before: dict, after: dict) -> dict[str, Any]:
    """Lag quantiles and late-tick shares of what the watcher observed between two scrapes."""
    buckets = bucket_deltas(histogram_buckets(before, LAG), histogram_buckets(after, LAG))
    total = buckets[-1][1] if buckets else 0.0

    def share_over(bound: float) -> float | None:
        within = next((count for le, count in buckets if le >= bound), total)
        return None if not total else (total - within) / total

    return {
        "lag_ticks": total,
        "lag_p50_ms": _ms(histogram_quantile(buckets, 0.5)),
        "lag_p99_ms": _ms(histogram_quantile(buckets, 0.99)),
        "lag_share_over_10ms": share_over(0.01),
        "lag_share_over_40ms": share_over(0.04),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def poll_console(url: str, times: list[float], stop: anyio.Event) -> None:
    """Log in and keep the Now page's live fragment fresh, as its script does."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        form = await http.get("/console")
        nonce = re.search(r'name="login_nonce" value="([^"]+)"', form.text)
        assert nonce is not None, "no login form"
        login = await http.post(
            "/console/login", data={"token": TOKEN, "login_nonce": nonce.group(1)}
        )
        assert login.status_code == 303, f"console login failed: {login.status_code}"
        await http.get("/console/now")
        while not stop.is_set():
            started = time.monotonic()
            answer = await http.get("/console/now/live")
            answer.raise_for_status()
            times.append(time.monotonic() - started)
            with anyio.move_on_after(POLL_SECONDS):
                await stop.wait()


async def browse_console(url: str, times: list[float], stop: anyio.Event) -> None:
    """The Now page open in Chromium; its own script refreshes it."""
    from tests.test_console_browser import browser_page

    async with browser_page() as page:
        page.on(
            "requestfinished",
            lambda request: (
                times.append(request.timing["responseEnd"] / 1000)
                if request.url.endswith("/console/now/live")
                else None
            ),
        )
        await page.goto(url + "/console")
        await page.fill("#token", TOKEN)
        await page.click("#login")
        await page.wait_for_url("**/console/now")
        await stop.wait()


async def wave(bench: Bench, server: Any, calls: int, *, console: str | None) -> dict[str, Any]:
    """One wave; ``console`` is ``None``, ``"poll"`` or ``"browser"``."""
    times: list[float] = []
    stop = anyio.Event()
    before = await scrape(server.url)
    async with anyio.create_task_group() as tg:
        if console == "poll":
            tg.start_soon(poll_console, server.url, times, stop)
        elif console == "browser":
            tg.start_soon(browse_console, server.url, times, stop)
        results = await drive(
            bench,
            server,
            wave_plan(calls),
            settle_seconds=SETTLE_SECONDS,
            tag=f"console-{console or 'closed'}",
        )
        after = await scrape(server.url)
        stop.set()
    side = caller_side(results)
    return {
        "console": console or "closed",
        "calls": len(results),
        "calls_dropped": side["calls_dropped"],
        "late_frame_share": side["late_frame_share"],
        "turn_latency_p95": side["turn_latency_p95"],
        **lag_figures(before, after),
        "console_answers": len(times),
        "console_answer_p50_ms": _ms(percentile(times, 50)),
        "console_answer_max_ms": _ms(max(times, default=None)),
    }


async def refresh_cost(calls: int, *, refreshes: int = 200) -> dict[str, Any]:
    """Loop time of one Now refresh with ``calls`` live calls: data gathered and rendered."""
    from pydantic import SecretStr

    from actors.web import Check
    from frontdesk.console.routes import Console, ConsoleSources
    from frontdesk.runtime.settings import Settings
    from tests.test_console_views import snapshot

    snapshots = [snapshot(call_sid=f"CA{n:032d}", started_at=time.time()) for n in range(calls)]

    async def describe() -> list[Any]:
        return list(snapshots)

    settings = Settings.model_construct(
        app_env="development", console_token=SecretStr(TOKEN), console_show_transcripts=False
    )
    lag = [(time.monotonic() - i * 0.05, 0.001) for i in range(1200)][::-1]
    console = Console(
        ConsoleSources(
            settings=lambda: settings,
            config_inbox=None,  # type: ignore[arg-type]
            dashboard_inbox=None,  # type: ignore[arg-type]
            describe_calls=describe,
            readiness=lambda: [
                Check(name=f"actor:{n}", ok=True, detail="running") for n in range(12)
            ],
            breakers=lambda: (),
            lag_samples=lambda: lag,
            call_starts=lambda: [time.monotonic()] * calls,
        )
    )
    template = console._env.get_template("now_live.html")
    times = []
    for index in range(refreshes + 20):
        console._now_cache = None
        started = time.perf_counter()
        template.render(now=await console.now(), csrf="x", show=False)
        if index >= 20:  # the first refreshes warm caches up
            times.append(time.perf_counter() - started)
    return {
        "live_calls": calls,
        "refresh_p50_ms": _ms(percentile(times, 50)),
        "refresh_p99_ms": _ms(percentile(times, 99)),
    }


async def measure(calls: int, *, browser: bool, rounds: int = 1) -> dict[str, Any]:
    """The refresh cost, then both waves against one server (``rounds`` times); the report."""
    cost = await refresh_cost(calls)
    logger.info("one Now refresh with %d live calls: %s", calls, cost)
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sampler = Sampler()
    sampler.track("bench", os.getpid())
    with tempfile.TemporaryDirectory(prefix="frontdesk-console-lag-") as tmp:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler.run)
            world, env_file = await start_world(Path(tmp), logs, realistic=False)
            try:
                bench = Bench(
                    workdir=Path(tmp),
                    logs=logs,
                    sampler=sampler,
                    world=world,
                    env_file=env_file,
                    env=read_env_file(env_file),
                )
                server = await start_frontdesk(
                    logs,
                    env_file,
                    outbox=Path(tmp) / "outbox.sqlite3",
                    extra_env={"CONSOLE_TOKEN": TOKEN},
                )
                try:
                    rows = []
                    for console in [None, "browser" if browser else "poll"] * rounds:
                        logger.info("%d calls, console %s", calls, console or "closed")
                        rows.append(await wave(bench, server, calls, console=console))
                        await wait_idle(server)
                finally:
                    await server.stop()
            finally:
                await world.stop(timeout=10)
                tg.cancel_scope.cancel()
    return {"calls_per_wave": calls, "refresh": cost, "waves": rows}


def render(report: dict[str, Any]) -> str:
    """The waves side by side."""
    keys = [
        "calls",
        "calls_dropped",
        "lag_p50_ms",
        "lag_p99_ms",
        "lag_share_over_10ms",
        "lag_share_over_40ms",
        "late_frame_share",
        "turn_latency_p95",
        "console_answers",
        "console_answer_p50_ms",
        "console_answer_max_ms",
    ]
    cost = report["refresh"]
    lines = [
        f"one Now refresh, {cost['live_calls']} live calls: p50 {cost['refresh_p50_ms']} ms, "
        f"p99 {cost['refresh_p99_ms']} ms of event-loop time",
        f"{'':<24}" + "".join(f"{w['console']:>14}" for w in report["waves"]),
    ]
    for key in keys:
        cells = []
        for w in report["waves"]:
            value = w.get(key)
            cells.append(f"{'-' if value is None else f'{value:.4g}':>14}")
        lines.append(f"{key:<24}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both waves, print the table and write :data:`RESULTS`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=25, help="calls per wave")
    parser.add_argument("--browser", action="store_true", help="open the page in Chromium")
    parser.add_argument("--rounds", type=int, default=1, help="closed/open wave pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    report = anyio.run(
        lambda: measure(args.calls, browser=args.browser, rounds=args.rounds),
        backend="asyncio",
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
