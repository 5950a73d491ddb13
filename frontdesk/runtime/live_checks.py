"""Live checks: one cheap authenticated request per configured dependency, pass or fail.

``python main.py check --live`` runs them once; in ``serve`` the
:class:`~actors.dependency_watch.DependencyWatch` actor runs them every few minutes.
Each check makes one read-only request that proves the key works and the service
answers, and reports the provider's own error message when it does not:

============  =========================================================  ==================
dependency    request                                                    credential
============  =========================================================  ==================
openai        ``GET {OPENAI_BASE_URL}/models`` (the ``openai`` client)   ``OPENAI_API_KEY``
deepgram      ``GET {DEEPGRAM_BASE_URL}/v1/projects``                    ``DEEPGRAM_API_KEY``
inworld       ``GET https://<INWORLD_TTS_URL's host>/tts/v1/voices``     ``INWORLD_API_KEY``
twilio        ``GET /2010-04-01/Accounts/{AC}.json`` (the ``twilio``     SID + auth token
              client)
backend       ``GET {V2_BACKEND_URL}/v2/health``                         (none)
dashboard:*   a signed ``{"kind": "ping"}`` ``POST`` to each configured  webhook secret
              dashboard URL (``docs/dashboard-webhooks.md``: answered
              2xx, never stored)
============  =========================================================  ==================

With several businesses (``PROFILES_DIR``), each business with its own backend or
dashboard adds the same checks under its id: ``<id>:backend``, ``<id>:dashboard:calls``...,
signed with its own secret.

Every check is bounded by ``LIVE_CHECK_TIMEOUT_SECONDS``; they run concurrently.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import openai
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client as TwilioClient
from twilio.rest.api.v2010 import account as _twilio_account  # noqa: F401  (loaded at import)

from frontdesk.runtime.businesses import Businesses, Dashboard
from frontdesk.runtime.settings import Settings

CHECK_TIMEOUT_SECONDS = 5.0
PING_KIND = "ping"
DASHBOARD_ENDPOINTS = ("jobs", "calls", "alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """How one dependency answered."""

    dependency: str
    ok: bool
    detail: str
    """What answered (``12 models``) or what went wrong, in the provider's words."""
    seconds: float


class CheckFailed(Exception):
    """A dependency answered wrongly, or not at all; the message says how."""


Check = Callable[[Settings, httpx.AsyncClient], Awaitable[str]]


async def run_checks(
    settings: Settings,
    *,
    timeout: float = CHECK_TIMEOUT_SECONDS,
    businesses: Businesses | None = None,
) -> list[CheckResult]:
    """Run every configured dependency's check at once; one result each, in a fixed order."""
    checks = configured(settings, businesses)
    results: dict[str, CheckResult] = {}
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:

        async def one(name: str, check: Check) -> None:
            results[name] = await _timed(name, check, settings, http, timeout)

        async with anyio.create_task_group() as tg:
            for name, check in checks.items():
                tg.start_soon(one, name, check)
    return [results[name] for name in checks]


def configured(settings: Settings, businesses: Businesses | None = None) -> dict[str, Check]:
    """The checks that apply to ``settings`` (and ``businesses``), by dependency name."""
    checks: dict[str, Check] = {
        "openai": check_openai,
        "deepgram": check_deepgram,
        "inworld": check_inworld,
        "twilio": check_twilio,
        "backend": check_backend,
    }
    for endpoint in DASHBOARD_ENDPOINTS:
        if getattr(settings, f"dashboard_{endpoint}_url") is not None:
            checks[f"dashboard:{endpoint}"] = _dashboard_check(endpoint)
    for business in businesses.all if businesses is not None else ():
        if business.profile.backend is not None:
            checks[f"{business.id}:backend"] = _backend_check(business.backend_url)
        if business.profile.dashboard is not None:
            for endpoint in DASHBOARD_ENDPOINTS:
                if getattr(business.dashboard, f"{endpoint}_url") is not None:
                    checks[f"{business.id}:dashboard:{endpoint}"] = _dashboard_check(
                        endpoint, business.dashboard
                    )
    return checks


async def _timed(
    name: str, check: Check, settings: Settings, http: httpx.AsyncClient, timeout: float
) -> CheckResult:
    started = time.monotonic()
    try:
        with anyio.fail_after(timeout):
            detail = await check(settings, http)
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout:g} s"
    except CheckFailed as exc:
        ok, detail = False, str(exc)
    return CheckResult(
        dependency=name, ok=ok, detail=detail, seconds=round(time.monotonic() - started, 3)
    )


def print_live_checks(settings: Settings, businesses: Businesses | None = None) -> bool:
    """Run the checks once and print a pass/fail line each; whether all passed."""
    results = anyio.run(
        lambda: run_checks(
            settings, timeout=settings.live_check_timeout_seconds, businesses=businesses
        ),
        backend="asyncio",
    )
    width = max(len(r.dependency) for r in results)
    print("Live checks")
    for result in results:
        mark = "pass" if result.ok else "FAIL"
        print(f"  {mark}  {result.dependency.ljust(width)}  {result.detail}")
    failed = [r.dependency for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} failed: {', '.join(failed)}")
    else:
        print(f"all {len(results)} dependencies answered")
    return not failed


# ------------------------------------------------------------------------ checks


async def check_openai(settings: Settings, http: httpx.AsyncClient) -> str:
    """``GET /models`` with the key, through OpenAI's own client."""
    client = openai.AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.live_check_timeout_seconds,
    )
    try:
        page = await client.models.list()
    except openai.APIStatusError as exc:
        raise CheckFailed(f"HTTP {exc.status_code}: {_openai_message(exc)}") from exc
    except openai.APIError as exc:
        raise CheckFailed(_unreachable(exc.__cause__ or exc)) from exc
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()
    ids = [model.id for model in page.data]
    if settings.openai_model not in ids:
        raise CheckFailed(
            f"the key works, but model {settings.openai_model!r} is not among its {len(ids)} models"
        )
    return f"{len(ids)} models, {settings.openai_model} among them"


async def check_deepgram(settings: Settings, http: httpx.AsyncClient) -> str:
    """``GET /v1/projects`` with ``Authorization: Token <key>``."""
    body = await _get(
        http,
        f"{settings.deepgram_base_url.rstrip('/')}/v1/projects",
        {"Authorization": f"Token {settings.deepgram_api_key.get_secret_value()}"},
        message=lambda b: b.get("err_msg") or b.get("message") or b.get("err_code"),
    )
    projects = body.get("projects")
    if not isinstance(projects, list):
        raise CheckFailed("the answer has no projects list")
    return f"{len(projects)} project{'s' if len(projects) != 1 else ''}"


def inworld_voices_url(tts_url: str) -> str:
    """The voice list beside ``INWORLD_TTS_URL``: same host, ``http(s)``, ``/tts/v1/voices``."""
    parts = urlsplit(tts_url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/tts/v1/voices", "", ""))


async def check_inworld(settings: Settings, http: httpx.AsyncClient) -> str:
    """Inworld's voice list with ``Authorization: Basic <key>``; the configured voice in it."""
    body = await _get(
        http,
        inworld_voices_url(settings.inworld_tts_url),
        {"Authorization": f"Basic {settings.inworld_api_key.get_secret_value()}"},
        message=lambda b: b.get("message"),
    )
    voices = [v.get("voiceId") for v in body.get("voices") or [] if isinstance(v, dict)]
    if settings.voice_inworld not in voices:
        raise CheckFailed(
            f"the key works, but voice {settings.voice_inworld!r} is not among its "
            f"{len(voices)} voices"
        )
    return f"{len(voices)} voices, {settings.voice_inworld} among them"


async def check_twilio(settings: Settings, http: httpx.AsyncClient) -> str:
    """Fetch the account through Twilio's own client; it must be active."""
    transport = AsyncTwilioHttpClient(timeout=settings.live_check_timeout_seconds)
    client = TwilioClient(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=transport,
    )
    client.api.base_url = settings.twilio_rest_url
    try:
        account = await client.api.v2010.accounts(settings.twilio_account_sid).fetch_async()
    except TwilioRestException as exc:
        raise CheckFailed(f"HTTP {exc.status}: {exc.msg} (Twilio error {exc.code})") from exc
    except (TwilioException, OSError) as exc:
        raise CheckFailed(_unreachable(exc)) from exc
    finally:
        await transport.close()
    if account.status != "active":
        raise CheckFailed(f"account {account.sid} is {account.status}")
    return f"account {account.friendly_name!r} active"


async def check_backend(settings: Settings, http: httpx.AsyncClient) -> str:
    """``GET /v2/health`` (``docs/backend-contract.md``)."""
    return await _backend_check(settings.v2_backend_url)(settings, http)


def _backend_check(url: str) -> Check:
    async def check(settings: Settings, http: httpx.AsyncClient) -> str:
        body = await _get(
            http,
            f"{url.rstrip('/')}/v2/health",
            {},
            message=lambda b: b.get("detail") or b.get("error"),
        )
        return f"status {body.get('status', 'unknown')}"

    return check


def ping_body() -> bytes:
    """A test ping's body: the ``ping`` kind, its own id, when it was sent."""
    body = {
        "kind": PING_KIND,
        "record_id": f"ping_{secrets.token_hex(8)}",
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return json.dumps(body).encode()


def _dashboard_check(endpoint: str, dashboard: Dashboard | None = None) -> Check:
    async def check(settings: Settings, http: httpx.AsyncClient) -> str:
        """A signed test ping, as the dashboard sync signs records."""
        from actors.dashboard_sync import sign

        target = dashboard if dashboard is not None else Dashboard.of(settings)
        url = getattr(target, f"{endpoint}_url")
        secret = target.secret
        if secret is None:
            raise CheckFailed("DASHBOARD_WEBHOOK_SECRET is not set: nothing can be signed")
        body = ping_body()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Frontdesk-Timestamp": timestamp,
            "X-Frontdesk-Signature": sign(secret.get_secret_value(), timestamp, body),
            "Idempotency-Key": json.loads(body)["record_id"],
        }
        try:
            response = await http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise CheckFailed(_unreachable(exc)) from exc
        if not response.is_success:
            raise CheckFailed(
                f"HTTP {response.status_code}: "
                f"{_message(response, lambda b: b.get('reason') or b.get('error'))}"
            )
        return f"ping answered {response.status_code}"

    return check


# ------------------------------------------------------------------------ helpers


async def _get(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    message: Callable[[dict[str, Any]], Any],
) -> dict[str, Any]:
    try:
        response = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise CheckFailed(_unreachable(exc)) from exc
    if not response.is_success:
        raise CheckFailed(f"HTTP {response.status_code}: {_message(response, message)}")
    try:
        body = response.json()
    except ValueError as exc:
        raise CheckFailed(f"HTTP {response.status_code}, but the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise CheckFailed("the answer is not a JSON object")
    return body


def _message(response: httpx.Response, pick: Callable[[dict[str, Any]], Any]) -> str:
    """The provider's own error message from its JSON body, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        picked = pick(body)
        if isinstance(picked, dict):
            picked = picked.get("message")
        if picked:
            return str(picked)[:300]
    return json.dumps(body)[:200]


def _openai_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def _unreachable(exc: BaseException) -> str:
    reason = str(exc).strip()
    return f"unreachable: {type(exc).__name__}" + (f": {reason[:200]}" if reason else "")
