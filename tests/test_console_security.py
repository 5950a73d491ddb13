"""The operator console's doors: off without a token, 401 without a session, CSRF, escaping.

A real Frontdesk runs in-process on a free port; requests are plain HTTP, as a browser
(or an attacker) would send them.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from frontdesk.app import Frontdesk
from frontdesk.console.auth import SessionKeys
from frontdesk.delivery.records import CallRecord, Lead, TranscriptEntry, TurnCounts, utcnow
from frontdesk.runtime.config import load_config
from tests.support import ROOT, base_env

pytestmark = pytest.mark.anyio

TOKEN = "console-token-0123456789"
PAGES = [
    "/console/now",
    "/console/now/live",
    "/console/calls",
    "/console/calls/CA00000000000000000000000000000001",
    "/console/outbox",
    "/console/businesses",
]
JSON_ENDPOINTS = ["/console/api/now", "/console/api/calls", "/console/api/outbox"]
POSTS = ["/console/outbox/retry", "/console/logout"]


@asynccontextmanager
async def console(tmp_path, monkeypatch, **env):
    for key, value in base_env(tmp_path, **env).items():
        monkeypatch.setenv(key, value)
    frontdesk = Frontdesk(load_config(None), load_config=lambda: load_config(None))
    async with anyio.create_task_group() as tg:
        await tg.start(frontdesk.run)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{frontdesk.web.port}", follow_redirects=False
        ) as http:
            yield frontdesk, http
        with anyio.fail_after(10):
            await frontdesk.shutdown()


async def log_in(http: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    form = await http.get("/console")
    nonce = re.search(r'name="login_nonce" value="([^"]+)"', form.text).group(1)
    return await http.post("/console/login", data={"token": token, "login_nonce": nonce})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def call_record(call_sid: str, **changes) -> CallRecord:
    now = utcnow()
    fields = dict(
        record_id=f"rec-{call_sid}",
        user_email=None,
        call_sid=call_sid,
        from_number="+14155550123",
        to_number="+14155550100",
        started_at=now,
        ended_at=now,
        duration_seconds=12.5,
        outcome="booked",
        ended_by="bot",
        hangup="hung_up",
        states_visited=["greeting", "wrap_up"],
        turns=TurnCounts(total=1, per_state={"greeting": 1}),
        transcript=[],
        tool_calls=[],
        failovers=[],
        lead=Lead(),
        greeting_latency_seconds=0.5,
        turn_latencies_seconds=[0.4],
    )
    fields.update(changes)
    return CallRecord(**fields)


async def test_the_console_is_not_there_without_a_token(tmp_path, monkeypatch):
    async with console(tmp_path, monkeypatch) as (_, http):
        answers = [await http.get(path) for path in ["/console", *PAGES, *JSON_ENDPOINTS]]
        posts = [await http.post(path) for path in ["/console/login", *POSTS]]

    assert [a.status_code for a in answers + posts] == [404] * (len(answers) + len(posts))


async def test_every_console_route_and_json_endpoint_is_401_without_a_session(
    tmp_path, monkeypatch
):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        index = await http.get("/console")
        pages = {path: await http.get(path) for path in PAGES}
        endpoints = {path: await http.get(path) for path in JSON_ENDPOINTS}
        posts = {path: await http.post(path, data={"csrf": "x"}) for path in POSTS}

    assert index.status_code == 401 and 'name="token"' in index.text
    assert {p: r.status_code for p, r in pages.items()} == dict.fromkeys(PAGES, 401)
    assert {p: r.status_code for p, r in endpoints.items()} == dict.fromkeys(JSON_ENDPOINTS, 401)
    assert all(r.json() == {"error": "log in to the console first"} for r in endpoints.values())
    assert {p: r.status_code for p, r in posts.items()} == dict.fromkeys(POSTS, 401)
    assert all("Live calls" not in r.text for r in pages.values())


async def test_the_token_logs_in_with_a_strict_http_only_session_cookie(tmp_path, monkeypatch):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        login = await log_in(http)
        now = await http.get("/console/now")
        api = await http.get("/console/api/now")

    assert login.status_code == 303 and login.headers["location"] == "/console/now"
    cookie = next(h for h in login.headers.get_list("set-cookie") if h.startswith("fd_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # development, over http
    assert now.status_code == 200 and "Live calls" in now.text
    assert "script-src 'self'" in now.headers["content-security-policy"]
    assert api.status_code == 200 and api.json()["calls"] == []
    assert {c["name"] for c in api.json()["checks"]} >= {"actor:dashboard_sync", "capacity"}
    assert {b["name"]: b["state"] for b in api.json()["breakers"]} == {
        "v2_backend": "closed",
        "inworld": "closed",
    }


async def test_a_wrong_token_is_401_logged_and_then_rate_limited(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="frontdesk.console.routes")
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        wrong = [await log_in(http, "not-the-token-at-all") for _ in range(5)]
        throttled = await log_in(http, TOKEN)

    assert [r.status_code for r in wrong] == [401] * 5
    assert "not the console token" in wrong[0].text
    assert throttled.status_code == 429  # even the right token waits out the window
    refused = [r.getMessage() for r in caplog.records if "wrong token" in r.getMessage()]
    assert len(refused) == 5 and "127.0.0.1" in refused[0]
    assert "further attempts refused" in refused[-1]
    assert "fd_console=" not in throttled.headers.get("set-cookie", "")


async def test_the_login_form_a_bookmarked_page_answers_with_logs_in_and_leads_back(
    tmp_path, monkeypatch
):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        page = await http.get("/console/calls?outcome=booked")
        nonce = re.search(r'name="login_nonce" value="([^"]+)"', page.text).group(1)
        wanted = re.search(r'name="next" value="([^"]+)"', page.text).group(1)
        login = await http.post(
            "/console/login", data={"token": TOKEN, "login_nonce": nonce, "next": wanted}
        )
        after = await http.get("/console/calls")
        http.cookies.clear()
        form = await http.get("/console")
        nonce = re.search(r'name="login_nonce" value="([^"]+)"', form.text).group(1)
        elsewhere = await http.post(
            "/console/login",
            data={"token": TOKEN, "login_nonce": nonce, "next": "//evil.example/console/"},
        )

    assert page.status_code == 401
    assert login.status_code == 303
    assert login.headers["location"] == "/console/calls?outcome=booked"
    assert after.status_code == 200
    assert elsewhere.headers["location"] == "/console/now"


async def test_a_login_without_its_form_token_is_refused(tmp_path, monkeypatch):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        forged = await http.post("/console/login", data={"token": TOKEN, "login_nonce": "x"})
        after = await http.get("/console/now")

    assert forged.status_code == 403
    assert after.status_code == 401


async def test_forged_and_expired_session_cookies_are_refused(tmp_path, monkeypatch):
    keys = SessionKeys(TOKEN)
    good = keys.new_session()
    expires, nonce, mac = good.split(".")
    forged = f"{int(expires) + 86400}.{nonce}.{mac}"
    other_token = SessionKeys("some-other-token-0123456789").new_session()
    expired = SessionKeys(TOKEN, clock=lambda: 1_000_000.0).new_session()
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        answers = {}
        for name, value in [
            ("forged", forged),
            ("other token", other_token),
            ("expired", expired),
            ("garbage", "a.b"),
            ("good", good),
        ]:
            http.cookies.clear()
            http.cookies.set("fd_console", value, domain="127.0.0.1", path="/console")
            answers[name] = (await http.get("/console/api/now")).status_code

    assert answers == {
        "forged": 401,
        "other token": 401,
        "expired": 401,
        "garbage": 401,
        "good": 200,
    }


async def test_a_post_without_the_csrf_token_is_refused(tmp_path, monkeypatch):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        await log_in(http)
        missing = await http.post("/console/outbox/retry", data={"record_id": "r1"})
        wrong = await http.post("/console/outbox/retry", data={"record_id": "r1", "csrf": "00"})
        logout_without = await http.post("/console/logout")
        still_in = await http.get("/console/now")
        csrf = csrf_of(still_in.text)
        logout = await http.post("/console/logout", data={"csrf": csrf})
        http.cookies.clear()
        out = await http.get("/console/now")

    assert (missing.status_code, wrong.status_code, logout_without.status_code) == (403, 403, 403)
    assert still_in.status_code == 200
    assert logout.status_code == 303
    assert out.status_code == 401


async def test_what_a_caller_said_is_never_rendered_unescaped(tmp_path, monkeypatch):
    attack = "<script>alert('x')</script>"
    record = call_record(
        "CA" + "5" * 32,
        from_number=f"+1415{attack}",
        transcript=[TranscriptEntry(role="caller", text=attack, at=utcnow())],
        lead=Lead(name=attack, description=attack),
    )
    async with console(
        tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN, CONSOLE_SHOW_TRANSCRIPTS="true"
    ) as (frontdesk, http):
        await anyio.to_thread.run_sync(frontdesk.outbox.put, [record])
        await log_in(http)
        page = await http.get(f"/console/calls/{record.call_sid}")
        listing = await http.get("/console/calls")

    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text and "<script>alert" not in listing.text
    assert record.call_sid in listing.text


async def test_transcripts_and_numbers_are_masked_unless_shown(tmp_path, monkeypatch):
    record = call_record(
        "CA" + "6" * 32,
        transcript=[TranscriptEntry(role="caller", text="my address is 12 Oak", at=utcnow())],
    )
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (frontdesk, http):
        await anyio.to_thread.run_sync(frontdesk.outbox.put, [record])
        await log_in(http)
        page = await http.get(f"/console/calls/{record.call_sid}")
        listing = await http.get("/console/api/calls")

    assert "12 Oak" not in page.text and "+14155550123" not in page.text
    assert "0123" in page.text  # the last four digits
    assert listing.json()["calls"][0]["caller"] == "•••••••0123"


async def test_the_businesses_page_shows_each_business_and_its_latest_report_card(
    tmp_path, monkeypatch
):
    folder = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", folder, ignore=shutil.ignore_patterns(".*"))
    profile = folder / "default.yaml"
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN, AGENT_PROFILE=str(profile)) as (
        _,
        http,
    ):
        await log_in(http)
        before = await http.get("/console/businesses")
        (folder / ".reports").mkdir()
        (folder / ".reports" / "default.json").write_text(
            json.dumps(
                {
                    "business": "Bayside Plumbing & Heating",
                    "passed": False,
                    "scenarios": [
                        {"name": "books_a_visit", "passed": True, "reasons": []},
                        {"name": "<b>asks_price</b>", "passed": False, "reasons": ["no $89"]},
                    ],
                }
            )
        )
        after = await http.get("/console/businesses")

    assert before.status_code == 200 and "Bayside Plumbing &amp; Heating" in before.text
    assert "No report card yet" in before.text and "Prices" in before.text
    assert "books_a_visit" in after.text and "no $89" in after.text
    assert "&lt;b&gt;asks_price&lt;/b&gt;" in after.text


async def test_wrong_tokens_sent_all_at_once_are_still_limited(tmp_path, monkeypatch):
    # Twenty logins whose headers all arrive before any body: each is checked against
    # the limit again once its body is in, so they cannot each try a token.
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (frontdesk, http):
        form = await http.get("/console")
        nonce = re.search(r'name="login_nonce" value="([^"]+)"', form.text).group(1)
        body = f"token=not-the-token-at-all&login_nonce={nonce}".encode()
        head = (
            "POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Cookie: fd_console_login={nonce}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        streams = [await anyio.connect_tcp("127.0.0.1", frontdesk.web.port) for _ in range(20)]
        for stream in streams:
            await stream.send(head)
        await anyio.sleep(0.5)  # every request is now waiting for its body
        for stream in streams:
            await stream.send(body)
        answers = []
        for stream in streams:
            with anyio.fail_after(10):
                status_line = (await stream.receive(4096)).split(b"\r\n", 1)[0]
            answers.append(int(status_line.split()[1]))
            await stream.aclose()

    assert answers.count(401) == 5 and answers.count(429) == 15, answers


async def test_a_cookie_or_csrf_token_in_other_characters_is_refused_not_an_error(
    tmp_path, monkeypatch
):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        odd_cookie = await http.get(
            "/console/api/now", headers={"Cookie": "fd_console=1.a.\u00e9t\u00e9".encode()}
        )
        await log_in(http)
        odd_csrf = await http.post("/console/outbox/retry", data={"record_id": "r1", "csrf": "é"})

    assert (odd_cookie.status_code, odd_csrf.status_code) == (401, 403)


async def test_a_logged_out_session_cookie_no_longer_opens_the_console(tmp_path, monkeypatch):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (_, http):
        await log_in(http)
        copied = http.cookies.get("fd_console")
        page = await http.get("/console/now")
        await http.post("/console/logout", data={"csrf": csrf_of(page.text)})
        http.cookies.clear()
        http.cookies.set("fd_console", copied, domain="127.0.0.1", path="/console")
        replayed = await http.get("/console/api/now")

    assert page.status_code == 200 and replayed.status_code == 401


def test_phone_numbers_in_a_provider_s_error_are_masked_unless_shown():
    from frontdesk.console.views import mask_numbers_in

    error = "HTTP 400: Invalid 'To' Phone Number: +1 (415) 555-0123 (21211)"

    assert mask_numbers_in(error, show=False) == (
        "HTTP 400: Invalid 'To' Phone Number: •••••••0123 (21211)"
    )
    assert mask_numbers_in(error, show=True) == error
