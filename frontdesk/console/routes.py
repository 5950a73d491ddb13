"""The console's routes: login, the four pages, their live data and the retry action.

Everything the pages show comes from state the process already holds: each live call
answers over its call actor's inbox, the outbox is read by the dashboard sync in a
worker thread (asked over its inbox), settings and profile come from the config
actor, and readiness, breakers, loop lag and call starts are read from memory — as
``/readyz`` and ``/metrics`` read them. Every wait is bounded; templates and static
assets are read once at startup, so no request touches the disk on the event loop.

Off (404) unless ``CONSOLE_TOKEN`` is set; in production, refused unless the request
came over https. Without a valid session every route but the login form and the
static assets answers 401.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web
from anyio.streams.memory import MemoryObjectSendStream
from jinja2 import DictLoader, Environment, StrictUndefined

from actors.call import CallSnapshot
from actors.config import ConfigMessage, GetConfig
from actors.dashboard_sync import (
    DashboardMessage,
    ListUndelivered,
    RecentCalls,
    RecordsOfCall,
    RetryDead,
)
from actors.web import Check
from frontdesk.console import views
from frontdesk.console.auth import LoginThrottle, Session, SessionKeys
from frontdesk.console.timeline import layout
from frontdesk.delivery.records import Outcome
from frontdesk.runtime.breaker import CircuitBreaker
from frontdesk.runtime.businesses import Business
from frontdesk.runtime.config import Config
from frontdesk.runtime.errors import ActorError
from frontdesk.runtime.mailbox import ask
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

COOKIE = "fd_console"
LOGIN_COOKIE = "fd_console_login"
ASK_TIMEOUT_SECONDS = 3.0
NOW_CACHE_SECONDS = 1.0
"""However many browsers poll the Now page, its data is gathered at most once a second."""
RECENT_CALLS = 100
UNDELIVERED_SHOWN = 100
REPORT_MAX_BYTES = 512 * 1024
STATIC_TYPES = {".css": "text/css", ".js": "application/javascript", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSources:
    """Where the console reads what it shows."""

    settings: Callable[[], Settings]
    config_inbox: MemoryObjectSendStream[ConfigMessage]
    dashboard_inbox: MemoryObjectSendStream[DashboardMessage]
    describe_calls: Callable[[], Awaitable[Sequence[CallSnapshot | str]]]
    readiness: Callable[[], list[Check]]
    breakers: Callable[[], Sequence[CircuitBreaker]]
    lag_samples: Callable[[], Iterable[tuple[float, float]]]
    call_starts: Callable[[], Iterable[float]]
    requeued: Callable[[], None] = lambda: None
    """Nudges whoever delivers records queued again (the SMS sender)."""


def _package_files(folder: str) -> dict[str, str]:
    root = resources.files("frontdesk.console") / folder
    return {
        item.name: item.read_text(encoding="utf-8") for item in root.iterdir() if item.is_file()
    }


class Console:
    """The operator console; :meth:`install` adds its routes to the web app."""

    def __init__(self, sources: ConsoleSources, *, clock: Callable[[], float] = time.time) -> None:
        """Read the templates and assets (once, now) and prepare the login throttle."""
        self._sources = sources
        self._clock = clock
        self._env = Environment(
            loader=DictLoader(_package_files("templates")),
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=False,
        )
        self._static = {name: text.encode() for name, text in _package_files("static").items()}
        self._throttle = LoginThrottle()
        self._keys: tuple[str, SessionKeys] | None = None
        self._now_cache: tuple[float, views.NowView] | None = None
        self._now_lock = anyio.Lock()

    def install(self, app: web.Application) -> None:
        """Add the console's routes."""
        add = app.router
        add.add_get("/console", self._index)
        add.add_post("/console/login", self._login)
        add.add_post("/console/logout", self._logout)
        add.add_get("/console/now", self._now_page)
        add.add_get("/console/now/live", self._now_live)
        add.add_get("/console/api/now", self._now_json)
        add.add_get("/console/calls", self._calls_page)
        add.add_get("/console/api/calls", self._calls_json)
        add.add_get("/console/calls/{call_sid}", self._call_page)
        add.add_get("/console/outbox", self._outbox_page)
        add.add_get("/console/api/outbox", self._outbox_json)
        add.add_post("/console/outbox/retry", self._retry)
        add.add_get("/console/businesses", self._businesses_page)
        add.add_get("/console/static/{name}", self._static_file)

    # ------------------------------------------------------------------ access

    def _settings(self) -> Settings:
        return self._sources.settings()

    def _session_keys(self) -> SessionKeys:
        """The keys of the current token; 404 while the console is off."""
        settings = self._settings()
        token = settings.console_token.get_secret_value() if settings.console_token else None
        if not token:
            raise web.HTTPNotFound()
        if self._keys is None or self._keys[0] != token:
            self._keys = (token, SessionKeys(token, clock=self._clock))
        return self._keys[1]

    def _check_transport(self, request: web.Request) -> None:
        if not self._settings().production:
            return
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if not (request.secure or forwarded == "https"):
            raise web.HTTPForbidden(text="the console is served over https only")

    def _session(self, request: web.Request) -> tuple[SessionKeys, Session | None]:
        keys = self._session_keys()
        self._check_transport(request)
        return keys, keys.session(request.cookies.get(COOKIE))

    def _require(
        self, request: web.Request, *, json_reply: bool = False
    ) -> tuple[SessionKeys, Session]:
        keys, session = self._session(request)
        if session is None:
            if json_reply:
                raise web.HTTPUnauthorized(
                    text=json.dumps({"error": "log in to the console first"}),
                    content_type="application/json",
                    headers=SECURITY_HEADERS,
                )
            # The login form, with the cookie its form token is checked against.
            page = self._login_page(request, status=401, error=None)
            raise web.HTTPUnauthorized(
                text=page.text,
                content_type="text/html",
                headers={
                    **SECURITY_HEADERS,
                    "Set-Cookie": page.cookies[LOGIN_COOKIE].OutputString(),
                },
            )
        return keys, session

    async def _require_csrf(self, request: web.Request) -> tuple[SessionKeys, Session, Any]:
        keys, session = self._require(request)
        form = await request.post()
        offered = form.get("csrf")
        if not keys.csrf_ok(session, offered if isinstance(offered, str) else None):
            logger.warning("console request refused from %s: no valid CSRF token", request.remote)
            raise web.HTTPForbidden(text="missing or invalid CSRF token", headers=SECURITY_HEADERS)
        return keys, session, form

    # ------------------------------------------------------------------ login

    def _render_login(self, request: web.Request, *, error: str | None) -> tuple[str, str]:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(18)
        wanted = request.path_qs if request.method == "GET" else "/console/now"
        html = self._env.get_template("login.html").render(
            error=error, login_nonce=nonce, next=_after_login(wanted)
        )
        return html, nonce

    def _login_page(self, request: web.Request, *, status: int, error: str | None) -> web.Response:
        html, nonce = self._render_login(request, error=error)
        response = web.Response(text=html, content_type="text/html", status=status)
        response.headers.update(SECURITY_HEADERS)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="Strict",
            secure=self._settings().production,
            path="/console",
            max_age=3600,
        )
        return response

    async def _index(self, request: web.Request) -> web.Response:
        _, session = self._session(request)
        if session is None:
            return self._login_page(request, status=401, error=None)
        raise web.HTTPSeeOther("/console/now")

    async def _login(self, request: web.Request) -> web.Response:
        keys = self._session_keys()
        self._check_transport(request)
        remote = request.remote or "unknown"
        if self._throttle.blocked(remote):
            return _too_many_attempts(remote)
        form = await request.post()
        # Again once the body is in: logins sent together all passed the check above
        # before any of them had failed.
        if self._throttle.blocked(remote):
            return _too_many_attempts(remote)
        nonce = form.get("login_nonce")
        if not isinstance(nonce, str) or nonce != request.cookies.get(LOGIN_COOKIE):
            logger.warning("console login from %s refused: no valid login form token", remote)
            return self._login_page(request, status=403, error="The form expired; try again.")
        token = form.get("token")
        if not isinstance(token, str) or not keys.token_matches(token):
            failures = self._throttle.failed(remote)
            logger.warning(
                "console login from %s refused: wrong token (%d in the last minute)%s",
                remote,
                failures,
                "; further attempts refused for a minute" if self._throttle.blocked(remote) else "",
            )
            return self._login_page(request, status=401, error="That is not the console token.")
        logger.info("console login from %s", remote)
        wanted = form.get("next")
        response = web.HTTPSeeOther(_after_login(wanted if isinstance(wanted, str) else ""))
        response.set_cookie(
            COOKIE,
            keys.new_session(),
            httponly=True,
            samesite="Strict",
            secure=self._settings().production,
            path="/console",
            max_age=int(keys.ttl),
        )
        response.del_cookie(LOGIN_COOKIE, path="/console")
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        keys, session, _ = await self._require_csrf(request)
        keys.revoke(session)
        response = web.HTTPSeeOther("/console")
        response.del_cookie(COOKIE, path="/console")
        raise response

    # ------------------------------------------------------------------ pages

    def _page(
        self, template: str, session: Session, keys: SessionKeys, **context: Any
    ) -> web.Response:
        html = self._env.get_template(template).render(
            csrf=keys.csrf(session),
            show=self._settings().console_show_transcripts,
            **context,
        )
        response = web.Response(text=html, content_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        return response

    async def now(self) -> views.NowView:
        """The Now page's data, gathered at most once per :data:`NOW_CACHE_SECONDS`."""
        async with self._now_lock:
            cached = self._now_cache
            if cached is not None and time.monotonic() - cached[0] < NOW_CACHE_SECONDS:
                return cached[1]
            sources = self._sources
            snapshots = await sources.describe_calls()
            wall, mono = self._clock(), time.monotonic()
            view = views.now_view(
                snapshots=snapshots,
                checks=sources.readiness(),
                breakers=[
                    views.BreakerReading(
                        name=b.name, state=b.state.value, since=wall - (mono - b.since)
                    )
                    for b in sources.breakers()
                ],
                lag_samples=list(sources.lag_samples()),
                starts=list(sources.call_starts()),
                wall_now=wall,
                mono_now=mono,
                show=self._settings().console_show_transcripts,
            )
            self._now_cache = (time.monotonic(), view)
            return view

    async def _now_page(self, request: web.Request) -> web.Response:
        keys, session = self._require(request)
        return self._page("now.html", session, keys, page="now", now=await self.now())

    async def _now_live(self, request: web.Request) -> web.Response:
        keys, session = self._require(request)
        return self._page("now_live.html", session, keys, now=await self.now())

    async def _now_json(self, request: web.Request) -> web.Response:
        self._require(request, json_reply=True)
        return _json(asdict(await self.now()))

    async def _ask_dashboard(self, make: Callable[[Any], DashboardMessage], what: str) -> Any:
        try:
            return await ask(
                self._sources.dashboard_inbox, make, timeout=ASK_TIMEOUT_SECONDS, what=what
            )
        except ActorError as exc:
            logger.warning("console: %s", exc)
            raise web.HTTPServiceUnavailable(
                text=f"the outbox did not answer: {exc}", headers=SECURITY_HEADERS
            ) from exc

    async def _config(self) -> Config:
        try:
            return await ask(
                self._sources.config_inbox,
                lambda reply: GetConfig(reply=reply),
                timeout=ASK_TIMEOUT_SECONDS,
                what="console config",
            )
        except ActorError as exc:
            raise web.HTTPServiceUnavailable(text=str(exc), headers=SECURITY_HEADERS) from exc

    async def _businesses(self) -> dict[str, str]:
        """Business names by business id and by number; ``""``: the first business."""
        config = await self._config()
        names = {"": config.profile.business_name}
        for business in config.businesses.all:
            names[business.id] = business.profile.business_name
            for number in business.numbers:
                names[number] = business.profile.business_name
        return names

    async def _call_rows(self, request: web.Request) -> tuple[list[views.CallRow], dict[str, Any]]:
        outcome = request.query.get("outcome") or None
        if outcome is not None and outcome not in {o.value for o in Outcome}:
            raise web.HTTPBadRequest(text=f"unknown outcome {outcome!r}", headers=SECURITY_HEADERS)
        business = request.query.get("business") or None
        summaries = await self._ask_dashboard(
            lambda reply: RecentCalls(limit=RECENT_CALLS, outcome=outcome, reply=reply),
            "recent calls",
        )
        names = await self._businesses()
        rows = views.call_rows(
            summaries,
            businesses=names,
            business=business,
            show=self._settings().console_show_transcripts,
        )
        filters = {
            "outcome": outcome or "",
            "business": business or "",
            "outcomes": [o.value for o in Outcome],
            "businesses": sorted(set(names.values())),
        }
        return rows, filters

    async def _calls_page(self, request: web.Request) -> web.Response:
        keys, session = self._require(request)
        rows, filters = await self._call_rows(request)
        return self._page("calls.html", session, keys, page="calls", rows=rows, **filters)

    async def _calls_json(self, request: web.Request) -> web.Response:
        self._require(request, json_reply=True)
        rows, _ = await self._call_rows(request)
        return _json({"calls": [asdict(row) for row in rows]})

    async def _call_page(self, request: web.Request) -> web.Response:
        keys, session = self._require(request)
        call_sid = request.match_info["call_sid"]
        records = await self._ask_dashboard(
            lambda reply: RecordsOfCall(call_sid=call_sid, reply=reply), "records of a call"
        )
        show = self._settings().console_show_transcripts
        page = views.call_page(call_sid, records, businesses=await self._businesses(), show=show)
        timeline = layout(page.record, texts=page.texts, show=show) if page.record else None
        response = self._page(
            "call.html", session, keys, page="calls", call=page, timeline=timeline
        )
        if not page.found:
            response.set_status(404)
        return response

    async def _undelivered(self) -> views.OutboxPage:
        view = await self._ask_dashboard(
            lambda reply: ListUndelivered(limit=UNDELIVERED_SHOWN, reply=reply), "outbox"
        )
        return views.outbox_page(view, show=self._settings().console_show_transcripts)

    async def _outbox_page(self, request: web.Request) -> web.Response:
        keys, session = self._require(request)
        done = request.query.get("retried")
        return self._page(
            "outbox.html",
            session,
            keys,
            page="outbox",
            outbox=await self._undelivered(),
            retried=int(done) if done and done.isdigit() else None,
        )

    async def _outbox_json(self, request: web.Request) -> web.Response:
        self._require(request, json_reply=True)
        return _json(asdict(await self._undelivered()))

    async def _retry(self, request: web.Request) -> web.Response:
        _, _, form = await self._require_csrf(request)
        ids = tuple(str(v) for v in form.getall("record_id", []) if isinstance(v, str) and v)
        if not ids:
            raise web.HTTPBadRequest(
                text="name the dead letters to retry", headers=SECURITY_HEADERS
            )
        count = await self._ask_dashboard(
            lambda reply: RetryDead(record_ids=ids, reply=reply), "retry dead letters"
        )
        logger.info("console: %d dead letters queued again from %s", count, request.remote)
        if count:
            self._sources.requeued()
        raise web.HTTPSeeOther(f"/console/outbox?retried={count}")

    async def _businesses_page(self, request: web.Request) -> web.Response:
        keys, session = self._require(request)
        config = await self._config()
        shown = []
        for business in config.businesses.all:
            report = await anyio.to_thread.run_sync(read_report_card, business.source)
            shown.append(business_view(business, report=report))
        return self._page("businesses.html", session, keys, page="businesses", businesses=shown)

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._static.get(name)
        if body is None:
            raise web.HTTPNotFound()
        self._session_keys()  # off: 404 like every other console route
        kind = STATIC_TYPES.get(Path(name).suffix, "application/octet-stream")
        return web.Response(
            body=body,
            content_type=kind,
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
        )


def _after_login(wanted: str) -> str:
    """Where a login leads: the console page asked for, never anywhere else."""
    if (
        wanted.startswith("/console/")
        and not wanted.startswith(("/console/login", "/console/logout", "/console/static/"))
        and "//" not in wanted
        and "\\" not in wanted
    ):
        return wanted
    return "/console/now"


def _json(body: Any) -> web.Response:
    response = web.json_response(body, dumps=lambda value: json.dumps(value, default=str))
    response.headers.update(SECURITY_HEADERS)
    return response


def business_view(business: Business, *, report: dict[str, Any] | None) -> dict[str, Any]:
    """One business as the Businesses page shows it, with its latest report card."""
    profile = business.profile
    knowledge = business.knowledge
    return {
        "id": business.id,
        "name": profile.business_name,
        "agent": profile.agent_name,
        "profile": str(business.source),
        "numbers": sorted(business.numbers),
        "sms_from": profile.sms.from_number if profile.sms.enabled else None,
        "handoff": [f"{t.name} {t.number}" for t in profile.handoff.targets],
        "languages": [f"{language.name} ({language.code})" for language in profile.spoken()],
        "services": [service.name for service in profile.services],
        "timezone": profile.hours.timezone,
        "knowledge": [
            (source.title, source.path.name, source.passages) for source in knowledge.sources
        ]
        if knowledge is not None
        else [],
        "report": report,
    }


def report_card_path(profile_path: Path) -> Path:
    """Where ``main.py try`` writes a profile's latest report card (its ``report_path``)."""
    return profile_path.parent / ".reports" / f"{profile_path.stem}.json"


def read_report_card(profile_path: Path) -> dict[str, Any] | None:
    """The latest pre-launch report card of the profile, if one was written (blocking).

    Returns ``{"path", "error"}`` for a card that cannot be read, and otherwise its
    top-level facts and, for each list of results in it, each result's name and verdict.
    """
    path = report_card_path(profile_path)
    try:
        if path.stat().st_size > REPORT_MAX_BYTES:
            return {"path": str(path), "error": "larger than 512 KB", "facts": [], "results": []}
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"path": str(path), "error": str(exc), "facts": [], "results": []}
    if not isinstance(data, dict):
        return {"path": str(path), "error": "not a JSON object", "facts": [], "results": []}
    facts = [(k, str(v)) for k, v in data.items() if isinstance(v, str | int | float | bool)]
    results = []
    for key, value in data.items():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    name = item.get("name") or item.get("scenario") or item.get("id") or key
                    verdict = next(
                        (item[k] for k in ("passed", "ok", "status", "result") if k in item), ""
                    )
                    reasons = item.get("reasons") or []
                    why = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else ""
                    results.append((key, str(name), str(verdict), why))
    return {"path": str(path), "error": None, "facts": facts, "results": results}


def _too_many_attempts(remote: str) -> web.Response:
    # Logged once, with the failure that reached the limit: no flood of lines.
    logger.debug("console login from %s refused: too many wrong tokens", remote)
    return web.Response(
        status=429, text="too many attempts; wait a minute", headers=SECURITY_HEADERS
    )
