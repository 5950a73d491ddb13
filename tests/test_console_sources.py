"""Where the console's figures come from: calls asked over their inboxes, https in production."""

from __future__ import annotations

import re

import anyio
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from actors.call import DescribeCall
from frontdesk.console.routes import Console, ConsoleSources
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.edge import _LiveCall
from tests.support import base_env, run_main
from tests.test_console_security import TOKEN, console
from tests.test_console_views import snapshot

pytestmark = pytest.mark.anyio


async def test_a_call_that_does_not_answer_is_asked_once_and_its_answer_is_taken_later(
    tmp_path, monkeypatch
):
    async with console(tmp_path, monkeypatch, CONSOLE_TOKEN=TOKEN) as (frontdesk, _):
        edge = frontdesk.telephony
        send, inbox = anyio.create_memory_object_stream[object](16)
        edge._calls["CA-stuck"] = _LiveCall(actor=None, inbox=send, account_sid="AC")  # type: ignore[arg-type]
        try:
            first = await edge.describe_calls()
            second = await edge.describe_calls()
            (question,) = [inbox.receive_nowait()]  # one question, however often it looked
            with pytest.raises(anyio.WouldBlock):
                inbox.receive_nowait()
            assert isinstance(question, DescribeCall)
            question.reply.send(snapshot(call_sid="CA-stuck", state="book"))
            third = await edge.describe_calls()
        finally:
            del edge._calls["CA-stuck"]

    assert first == ["CA-stuck"] and second == ["CA-stuck"]
    assert [s.state for s in third] == ["book"]  # type: ignore[union-attr]


class Nothing:
    """Sources a production console never reaches in these tests."""

    def __getattr__(self, name: str):
        raise AssertionError(f"{name} was not expected to be read")


async def test_in_production_the_console_answers_only_over_https_with_a_secure_cookie():
    settings = Settings.model_construct(
        app_env="production", console_token=SecretStr(TOKEN), console_show_transcripts=False
    )
    nothing = Nothing()
    console_app = Console(
        ConsoleSources(
            settings=lambda: settings,
            config_inbox=nothing,  # type: ignore[arg-type]
            dashboard_inbox=nothing,  # type: ignore[arg-type]
            describe_calls=lambda: nothing.describe_calls(),
            readiness=lambda: [],
            breakers=lambda: (),
            lag_samples=lambda: [],
            call_starts=lambda: [],
        )
    )
    app = web.Application()
    console_app.install(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    https = {"X-Forwarded-Proto": "https"}
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), headers=https) as http:
            plain = await http.get("/console", headers={"X-Forwarded-Proto": "http"})
            form = await http.get("/console")
            nonce = re.search(r'name="login_nonce" value="([^"]+)"', form.text).group(1)
            # Over https the browser sends back the Secure login cookie; httpx on http won't.
            login = await http.post(
                "/console/login",
                data={"token": TOKEN, "login_nonce": nonce},
                headers={"Cookie": f"fd_console_login={nonce}"},
            )
    finally:
        await server.close()

    assert plain.status_code == 403
    assert form.status_code == 401
    assert "Secure" in form.headers["set-cookie"]
    assert login.status_code == 303
    cookie = next(h for h in login.headers.get_list("set-cookie") if h.startswith("fd_console="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_short_console_token_stops_startup_and_a_good_one_is_masked(tmp_path):
    short_code, _, short_err = run_main(
        "check", env=base_env(tmp_path, CONSOLE_TOKEN="too-short"), cwd=tmp_path
    )
    code, stdout, stderr = run_main(
        "check", env=base_env(tmp_path, CONSOLE_TOKEN=TOKEN), cwd=tmp_path
    )

    assert short_code == 2 and "CONSOLE_TOKEN: must be at least 16 characters" in short_err
    assert "too-short" not in short_err
    assert code == 0 and "CONSOLE_TOKEN" in stdout and TOKEN not in stdout + stderr
