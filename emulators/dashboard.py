"""The dashboard's webhook receiver: signed, idempotent JSON records of jobs, calls, alerts.

Frontdesk POSTs each record to ``/webhooks/jobs``, ``/webhooks/calls`` or
``/webhooks/alerts`` (routes ``jobs``, ``calls``, ``alerts``). The emulator checks a
request the way ``docs/dashboard-webhooks.md`` tells a dashboard owner to, in this
order, and the first failure answers with ``{"error": code, "reason": sentence}``:

1. ``X-Frontdesk-Timestamp`` and ``X-Frontdesk-Signature`` present and well formed,
   and the signature ``v1=HMAC-SHA256(secret, f"{timestamp}.{raw body}")`` matches (401);
2. the timestamp within :data:`TOLERANCE_SECONDS` of now (401);
3. an ``Idempotency-Key`` header (400);
4. a JSON object body (400);
5. the body valid against ``<kind>.schema.json`` in the schema directory (400).

A new key is stored and answered ``201 accepted``; a key seen before for the same kind
is answered ``200 duplicate`` and not stored again. A test ping (a body whose ``kind``
is ``ping``, sent by ``check --live``) passes checks 1 to 4, skips the schema, is
answered ``200 pong`` and is never stored.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from emulators.base import Emulator

logger = logging.getLogger(__name__)

KINDS = ("jobs", "calls", "alerts")
PING_KIND = "ping"
SCHEMA_FILES = {
    "jobs": "job.schema.json",
    "calls": "call.schema.json",
    "alerts": "alert.schema.json",
}
TOLERANCE_SECONDS = 300
SIGNATURE_VERSION = "v1"

JSONObject = dict[str, Any]


class Rejected(Exception):
    """A webhook failed verification; becomes the ``{"error", "reason"}`` answer."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


_REJECTION = web.RequestKey("dashboard_rejection", Rejected)
"""Where :meth:`DashboardEmulator._receive` leaves its verdict for the attempt recorder."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Frontdesk-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def _format_checker() -> FormatChecker:
    """Draft 2020-12 formats, with ``date-time`` checked even without rfc3339-validator."""
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        moment = datetime.fromisoformat(value)
        return moment.tzinfo is not None and "T" in value.upper()

    return checker


@dataclass(slots=True)
class _Inbox:
    """What arrived; one lock, because tests may read from another thread."""

    received: list[JSONObject] = field(default_factory=list)
    attempts: list[JSONObject] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class DashboardEmulator(Emulator):
    """The dashboard's three webhook endpoints, verifying and storing what Frontdesk sends."""

    name = "dashboard"

    def __init__(
        self, *, secret: str, schema_dir: Path, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Create the receiver; schemas are loaded by :meth:`start`.

        Raises:
            ValueError: ``secret`` is empty.
        """
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        super().__init__(host=host, port=port)
        self._secret = secret
        self.schema_dir = Path(schema_dir)
        self._validators: dict[str, Draft202012Validator | None] = {}
        self._inbox = _Inbox()
        self.pings = 0
        """Test pings answered (``check --live``); none is stored."""

    async def start(self) -> None:
        """Load and check the schemas, then listen.

        Raises:
            jsonschema.exceptions.SchemaError: A schema file is not a valid Draft 2020-12 schema.
            ValueError: A schema file is not JSON.
        """
        self._validators = {kind: self._load_schema(kind) for kind in KINDS}
        await super().start()

    def outer_middlewares(self) -> list[Any]:
        """Record every attempt, even those an injected fault answers."""
        return [self._record_attempt]

    def install(self, app: web.Application) -> None:
        """Add the webhook routes and the reader of what arrived."""
        for kind in KINDS:
            app.router.add_post(f"/webhooks/{kind}", self._receive, name=kind)
        app.router.add_get("/__received", self._admin_received, name="__admin_received")

    # ------------------------------------------------------------------ Python API

    def received(self, kind: str | None = None) -> list[JSONObject]:
        """Accepted records of ``kind`` (``jobs``, ``calls``, ``alerts``; all when ``None``).

        Each is ``{"kind", "idempotency_key", "received_at", "body"}``, in arrival order.
        """
        with self._inbox.lock:
            return [
                copy.deepcopy(r) for r in self._inbox.received if kind is None or r["kind"] == kind
            ]

    def latest(self, kind: str) -> list[JSONObject]:
        """The bodies of ``kind`` as a dashboard keeps them: the latest revision of each record.

        Per ``record_id``, the highest ``revision`` received wins, so a revision arriving
        late never replaces a newer one.
        """
        kept: dict[str, JSONObject] = {}
        for entry in self.received(kind):
            body = entry["body"]
            current = kept.get(body.get("record_id"))
            if current is None or body.get("revision", 0) >= current.get("revision", 0):
                kept[body.get("record_id")] = body
        return list(kept.values())

    def attempts(self) -> list[JSONObject]:
        """Every webhook request, rejected or faulted ones included, with its status."""
        with self._inbox.lock:
            return [dict(a) for a in self._inbox.attempts]

    # --------------------------------------------------------------------- routes

    async def _receive(self, request: web.Request) -> web.Response:
        kind = request.match_info.route.name or ""
        raw = await request.read()
        try:
            key, body = self._verify(kind, request, raw)
        except Rejected as exc:
            request[_REJECTION] = exc
            logger.info("dashboard: rejected %s webhook: %s", kind, exc.reason)
            return web.json_response({"error": exc.error, "reason": exc.reason}, status=exc.status)
        if body.get("kind") == PING_KIND:
            # ``check --live`` testing the URL and the secret: answered, never stored.
            self.pings += 1
            return web.json_response({"status": "pong"}, status=200)
        with self._inbox.lock:
            duplicate = (kind, key) in self._inbox.keys
            if not duplicate:
                self._inbox.keys.add((kind, key))
                self._inbox.received.append(
                    {"kind": kind, "idempotency_key": key, "received_at": _now(), "body": body}
                )
        if duplicate:
            return web.json_response({"status": "duplicate"}, status=200)
        return web.json_response({"status": "accepted"}, status=201)

    def _verify(self, kind: str, request: web.Request, raw: bytes) -> tuple[str, JSONObject]:
        """Run the checks of the module docstring in order; return the key and the body.

        Raises:
            Rejected: The first check that failed.
        """
        timestamp = self._verified_timestamp(request, raw)
        skew = time.time() - timestamp
        if abs(skew) > TOLERANCE_SECONDS:
            raise Rejected(
                401,
                "stale_timestamp",
                f"X-Frontdesk-Timestamp is {skew:+.0f} s away from the receiver's clock; "
                f"at most {TOLERANCE_SECONDS} s is accepted (replay protection)",
            )
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise Rejected(400, "missing_idempotency_key", "the Idempotency-Key header is missing")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Rejected(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise Rejected(
                400, "invalid_json", f"the body must be a JSON object, got {type(body).__name__}"
            )
        validator = self._validators.get(kind)
        if validator is not None and body.get("kind") != PING_KIND:
            error = best_match(validator.iter_errors(body))
            if error is not None:
                raise Rejected(
                    400,
                    "schema_violation",
                    f"the {kind} record does not match {SCHEMA_FILES[kind]}: "
                    f"at {error.json_path}: {error.message}",
                )
        return key, body

    def _verified_timestamp(self, request: web.Request, raw: bytes) -> int:
        stamp = request.headers.get("X-Frontdesk-Timestamp")
        sent = request.headers.get("X-Frontdesk-Signature")
        if stamp is None:
            raise Rejected(401, "missing_timestamp", "the X-Frontdesk-Timestamp header is missing")
        if sent is None:
            raise Rejected(401, "missing_signature", "the X-Frontdesk-Signature header is missing")
        if not stamp.isascii() or not stamp.isdigit():
            raise Rejected(
                401,
                "malformed_timestamp",
                f"X-Frontdesk-Timestamp must be whole unix seconds, got {stamp!r}",
            )
        prefix = f"{SIGNATURE_VERSION}="
        candidates = [s.strip() for s in sent.split(",") if s.strip().startswith(prefix)]
        if not candidates:
            raise Rejected(
                401,
                "malformed_signature",
                f"X-Frontdesk-Signature must look like {prefix}<hex HMAC-SHA256>",
            )
        expected = signature(self._secret, stamp, raw).encode()
        # Every candidate is compared, so timing reveals nothing about which one matched.
        matches = [hmac.compare_digest(expected, c.lower().encode()) for c in candidates]
        if not any(matches):
            raise Rejected(
                401,
                "bad_signature",
                "X-Frontdesk-Signature does not match HMAC-SHA256(secret, "
                '"<X-Frontdesk-Timestamp>.<raw body>"): wrong secret, or the body or '
                "timestamp changed after signing",
            )
        return int(stamp)

    async def _admin_received(self, request: web.Request) -> web.Response:
        return web.json_response({"received": self.received(), "attempts": self.attempts()})

    @web.middleware
    async def _record_attempt(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or ""
        if route not in KINDS:
            return await handler(request)
        response = await handler(request)
        rejection = request.get(_REJECTION)
        with self._inbox.lock:
            self._inbox.attempts.append(
                {
                    "kind": route,
                    "status": response.status,
                    "error": rejection.error if rejection else None,
                    "reason": rejection.reason if rejection else None,
                    "idempotency_key": request.headers.get("Idempotency-Key"),
                    "received_at": _now(),
                }
            )
        return response

    def _load_schema(self, kind: str) -> Draft202012Validator | None:
        path = self.schema_dir / SCHEMA_FILES[kind]
        if not path.exists():
            logger.info("dashboard: no %s; accepting any JSON object for %s", path, kind)
            return None
        try:
            schema = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from exc
        Draft202012Validator.check_schema(schema)
        return Draft202012Validator(schema, format_checker=_format_checker())


def _now() -> str:
    return datetime.now(UTC).isoformat()
