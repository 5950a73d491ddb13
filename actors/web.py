"""WebActor: the aiohttp server — health, readiness, metrics, and the routes others add.

It owns the listening socket. Liveness (``/healthz``) is 200 for as long as the
supervisor runs; readiness (``/readyz``) is 200 only when every permanent actor runs,
the process is not draining and there is room for another call — otherwise 503 with
JSON naming each failing check, so an operator sees why without reading logs.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import anyio
from aiohttp import web
from aiohttp.typedefs import Handler
from anyio.abc import TaskStatus

from frontdesk.runtime.metrics import CONTENT_TYPE, Metrics
from supervisor import Restart, Supervisor

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One readiness check. ``ok`` with a detail is a degradation, not unreadiness."""

    name: str
    ok: bool
    detail: str = ""


CheckSource = Callable[[], list[Check]]
RouteInstaller = Callable[[web.Application], None]


def readiness_checks(
    supervisor: Supervisor, *, max_calls: int, extra: Sequence[CheckSource] = ()
) -> list[Check]:
    """Every readiness check, failing or not."""
    checks = [
        Check(
            name=f"actor:{child.name}",
            ok=child.running,
            detail="running" if child.running else f"down ({child.last_error or 'restarting'})",
        )
        for child in supervisor.children()
        if child.restart is not Restart.TEMPORARY
    ]
    checks.append(
        Check(
            name="draining",
            ok=not supervisor.draining,
            detail="draining before shutdown" if supervisor.draining else "accepting calls",
        )
    )
    active = supervisor.count("call")
    checks.append(
        Check(name="capacity", ok=active < max_calls, detail=f"{active} of {max_calls} calls")
    )
    for source in extra:
        checks.extend(source())
    return checks


class WebActor:
    """Serves HTTP and websockets on one port."""

    def __init__(
        self,
        *,
        supervisor: Supervisor,
        metrics: Metrics,
        host: str,
        port: int,
        max_calls: Callable[[], int],
        reuse_port: bool = False,
        max_request_bytes: int,
        development: bool,
        request_read_timeout: float = 10.0,
        routes: Sequence[RouteInstaller] = (),
        checks: Sequence[CheckSource] = (),
    ) -> None:
        """Create the actor.

        Args:
            supervisor: Whose state health and readiness report.
            metrics: The registry served at ``/metrics``.
            host: Address to listen on.
            port: Port to listen on; 0 picks a free one (see :attr:`port`).
            reuse_port: Share the port with the machine's other workers (SO_REUSEPORT:
                the kernel spreads new connections across them).
            max_calls: The current call capacity (settings can change on reload).
            max_request_bytes: Largest request body accepted.
            development: Enables the loopback-only ``/debug`` routes.
            request_read_timeout: Seconds a client has to send a whole request head (and
                to stay idle between keep-alive requests); slower ones are closed.
            routes: Installers that add further routes (the telephony edge).
            checks: Extra readiness checks (e.g. breakers, reported as degradations).
        """
        self._supervisor = supervisor
        self._metrics = metrics
        self._host = host
        self._requested_port = port
        self._reuse_port = reuse_port
        self._max_calls = max_calls
        self._max_request_bytes = max_request_bytes
        self._development = development
        self._request_read_timeout = request_read_timeout
        self._routes = routes
        self._checks = checks
        self.port: int | None = None

    def build_app(self) -> web.Application:
        """The aiohttp application with every route installed."""
        app = web.Application(
            client_max_size=self._max_request_bytes, middlewares=[self._limit_body]
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_route)
        if self._development:
            app.router.add_post("/debug/actors/{name}/kill", self._kill_actor)
        for install in self._routes:
            install(app)
        return app

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; the socket is bound before ``started()``."""
        runner = web.AppRunner(
            self.build_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=CLEANUP_TIMEOUT_SECONDS,
            # aiohttp arms its keep-alive timer when a connection opens and only re-arms
            # it after a response, so it also bounds how long a request head may take.
            keepalive_timeout=self._request_read_timeout,
        )
        await runner.setup()
        try:
            sock = _listen(
                self._host,
                self._requested_port if self.port is None else self.port,
                reuse_port=self._reuse_port,
            )
            site = web.SockSite(runner, sock)
            await site.start()
            self.port = sock.getsockname()[1]
            logger.info("listening on %s:%d", self._host, self.port)
            task_status.started()
            await anyio.sleep_forever()
        finally:
            with anyio.move_on_after(CLEANUP_TIMEOUT_SECONDS, shield=True):
                await runner.cleanup()

    @web.middleware
    async def _limit_body(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # client_max_size only bites when a handler reads the body; refuse early instead.
        if (request.content_length or 0) > self._max_request_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self._max_request_bytes, actual_size=request.content_length or 0
            )
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    def readiness(self) -> list[Check]:
        """Every readiness check of this process, failing or not."""
        return readiness_checks(self._supervisor, max_calls=self._max_calls(), extra=self._checks)

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = self.readiness()
        failing = [c.name for c in checks if not c.ok]
        body = {
            "status": "unready" if failing else "ready",
            "failing": failing,
            "checks": [asdict(c) for c in checks],
        }
        return web.json_response(body, status=503 if failing else 200)

    async def _metrics_route(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _kill_actor(self, request: web.Request) -> web.Response:
        if request.remote not in ("127.0.0.1", "::1"):
            raise web.HTTPForbidden(text="debug routes answer loopback only")
        name = request.match_info["name"]
        try:
            self._supervisor.kill(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"no actor named {name!r}") from None
        logger.warning("actor %s killed on request", name)
        return web.json_response({"killed": name})


def _listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
