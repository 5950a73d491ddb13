"""Small helpers the websocket emulators share: auth headers and sends that tolerate a lost peer.

Pipecat's clients hang up without waiting (after ``CloseStream``, on interruption, on
cancel), so an emulator's write to a closing socket is normal, not an error: the
send helpers report it by returning ``False``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web


def credential(request: web.Request, scheme: str) -> str | None:
    """The non-empty credential of ``Authorization: <scheme> <credential>``, else ``None``."""
    header = request.headers.get("Authorization", "")
    given, _, value = header.partition(" ")
    if given.lower() != scheme.lower() or not value.strip():
        return None
    return value.strip()


async def send_json(ws: web.WebSocketResponse, message: dict[str, Any]) -> bool:
    """Send ``message`` as a JSON text frame; ``False`` if the peer has gone."""
    if ws.closed:
        return False
    try:
        await ws.send_str(json.dumps(message))
    except (ConnectionError, RuntimeError):
        return False
    return True


async def send_bytes(ws: web.WebSocketResponse, data: bytes) -> bool:
    """Send ``data`` as a binary frame; ``False`` if the peer has gone."""
    if ws.closed:
        return False
    try:
        await ws.send_bytes(data)
    except (ConnectionError, RuntimeError):
        return False
    return True


async def close(ws: web.WebSocketResponse, code: int = 1000) -> None:
    """Close ``ws`` normally; a peer that already left is fine."""
    if ws.closed:
        return
    try:
        await ws.close(code=code)
    except (ConnectionError, RuntimeError):
        return


async def finish(ws: web.WebSocketResponse, sender: asyncio.Task[None], emulator: Any) -> None:
    """End a session: stop its sender task and forget the socket."""
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    emulator.untrack(ws)
