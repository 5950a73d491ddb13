"""What every emulator shares: a loopback aiohttp server with faults and an admin API.

An emulator is an :class:`Emulator` subclass that adds its routes in
:meth:`Emulator.install`, naming each route so faults can target it. The base class
applies ``latency`` and ``error`` faults before a route's handler runs, stops and
resumes listening for ``refuse`` / ``down``, and closes tracked connections on
``down``. Streaming handlers ask :meth:`Emulator.stream_fault` between chunks to
honour ``stall`` and ``close``.

Every emulator also answers ``GET/POST/DELETE /__admin/faults`` on its own port; a
``refuse`` fault stops that port too, so clear it through the world's control server
or the Python API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler

from emulators.faults import Fault, FaultKind, Faults

logger = logging.getLogger(__name__)

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StreamCut(Exception):
    """Raised inside a streaming handler when a ``close`` fault cuts the stream."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Emulator:
    """A loopback server speaking one provider's protocol."""

    name = "emulator"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Create the emulator; nothing listens until :meth:`start`."""
        self.host = host
        self.port = port
        self.faults = Faults(on_change=self._faults_changed)
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[web.WebSocketResponse] = set()
        self._streams: set[web.StreamResponse] = set()
        self._listening_lock = asyncio.Lock()
        self._pending_apply: asyncio.Future[None] | None = None
        self._changed: asyncio.Event | None = None

    # ------------------------------------------------------------------ subclass API

    def install(self, app: web.Application) -> None:
        """Add the provider's routes (subclasses override)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://host:port`` of this emulator."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port`` of this emulator."""
        return f"ws://{self.host}:{self.port}"

    def track(self, connection: web.StreamResponse) -> None:
        """Remember an open websocket or streaming response, so ``down`` can cut it."""
        if isinstance(connection, web.WebSocketResponse):
            self._connections.add(connection)
        else:
            self._streams.add(connection)

    def untrack(self, connection: web.StreamResponse) -> None:
        """Forget a connection once it has ended."""
        self._connections.discard(connection)  # type: ignore[arg-type]
        self._streams.discard(connection)

    async def stream_fault(self, route: str, sent: int) -> None:
        """Honour ``stall`` / ``close`` faults after ``sent`` messages of a stream.

        Raises:
            StreamCut: A ``close`` fault applies; the handler must end the stream abruptly.
        """
        fault = self.faults.active(route, FaultKind.STALL, FaultKind.CLOSE)
        if fault is None or sent < fault.after:
            return
        if fault.kind is FaultKind.CLOSE:
            self.faults.take(route, FaultKind.CLOSE)
            raise StreamCut(fault.code)
        logger.info("%s: stalling %s after %d messages", self.name, route, sent)
        if fault.seconds > 0:
            await asyncio.sleep(fault.seconds)
            return
        while self.faults.active(route, FaultKind.STALL) is not None:
            changed = self._fault_changed_event()
            await changed.wait()

    def error_body(self, status: int) -> dict[str, Any]:
        """The JSON body of an injected ``error`` fault, in the provider's own shape."""
        return {"error": {"message": f"injected {status}", "code": status}}

    def outer_middlewares(self) -> list[Any]:
        """Middlewares that run before the fault middleware (subclasses may add some)."""
        return []

    async def faults_applied(self) -> None:
        """Wait until the last fault change (refuse / down / clear) has taken effect."""
        while self._pending_apply is not None and not self._pending_apply.done():
            await asyncio.shield(self._pending_apply)

    # -------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start listening on ``host:port`` (port 0 picks a free one)."""
        self._loop = asyncio.get_running_loop()
        app = web.Application(
            middlewares=[*self.outer_middlewares(), self._fault_middleware],
            client_max_size=8 * 2**20,
        )
        app.router.add_get("/__admin/faults", self._admin_list, name="__admin")
        app.router.add_post("/__admin/faults", self._admin_add, name="__admin_add")
        app.router.add_delete("/__admin/faults", self._admin_clear, name="__admin_clear")
        self.install(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        await self._bind_listener()
        logger.info("%s emulator on %s", self.name, self.url)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        await self._close_connections(WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------------- faults

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or ""
        if route.startswith("__admin"):
            return await handler(request)
        latency = self.faults.take(route, FaultKind.LATENCY)
        if latency is not None and latency.seconds > 0:
            await asyncio.sleep(latency.seconds)
        error = self.faults.take(route, FaultKind.ERROR)
        if error is not None:
            return web.json_response(self.error_body(error.status), status=error.status)
        return await handler(request)

    def _faults_changed(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._schedule_apply()
        else:
            loop.call_soon_threadsafe(self._schedule_apply)

    def _schedule_apply(self) -> None:
        self._pending_apply = asyncio.ensure_future(self._apply_listening())
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    def _fault_changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def _apply_listening(self) -> None:
        async with self._listening_lock:
            refusing = self.faults.has(FaultKind.REFUSE) or self.faults.has(FaultKind.DOWN)
            if self.faults.has(FaultKind.DOWN):
                down = self.faults.active("", FaultKind.DOWN)
                await self._close_connections(down.code if down else 1011)
            if refusing and self._site is not None:
                await self._site.stop()
                self._site = None
                logger.info("%s: refusing connections", self.name)
            elif not refusing and self._site is None and self._runner is not None:
                await self._bind_listener()
                logger.info("%s: accepting connections again", self.name)

    async def _bind_listener(self) -> None:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(512)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock)
        await self._site.start()

    async def _close_connections(self, code: int) -> None:
        for ws in list(self._connections):
            await _abort_websocket(ws, code)
        self._connections.clear()
        self._streams.clear()
        server = self._runner.server if self._runner is not None else None
        if server is not None:
            for handler in server.connections:
                handler.force_close()

    # ----------------------------------------------------------------------- admin

    async def _admin_list(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [f.to_json() for f in self.faults.list()]})

    async def _admin_add(self, request: web.Request) -> web.Response:
        try:
            fault = Fault.from_json(await request.json())
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.faults.add(fault)
        return web.json_response({"added": fault.to_json()}, status=201)

    async def _admin_clear(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind")
        self.faults.clear(FaultKind(kind) if kind else None)
        return web.json_response({"cleared": kind or "all"})


async def _abort_websocket(ws: web.WebSocketResponse, code: int) -> None:
    """Close ``ws`` abruptly: send the close code without waiting for the peer."""
    if ws.closed:
        return
    transport = ws._req.transport if ws._req is not None else None
    with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
        await asyncio.wait_for(ws.close(code=code, message=b"emulated failure"), 0.2)
    if transport is not None:
        transport.abort()


async def cut_websocket(ws: web.WebSocketResponse, code: int) -> None:
    """End ``ws`` abruptly with ``code`` (a ``close`` fault)."""
    await _abort_websocket(ws, code)
