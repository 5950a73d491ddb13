"""Logging: one handler, one format, one level for Frontdesk and Pipecat alike.

Pipecat logs through loguru; its records are handed to the standard library so every
line goes through the same handler. Inside a call, every line carries the call's
``call_sid`` (set with :func:`bind_call_sid`, read from a context variable, so tasks
spawned by the call inherit it) and the id of the business it is for
(:func:`bind_business`). A worker of ``serve --workers N`` tags every line with
``worker=N`` (:func:`set_worker`). Known secret values are scrubbed from every line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

TEXT_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"

call_sid_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "frontdesk_call_sid", default=None
)

business_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "frontdesk_business", default=None
)


@contextlib.contextmanager
def bind_business(business: str) -> Iterator[None]:
    """Tag every log line written in this context (and its tasks) with the business's id."""
    token = business_var.set(business)
    try:
        yield
    finally:
        business_var.reset(token)


_worker: int | None = None


def set_worker(worker: int | None) -> None:
    """Tag every line this process writes from now on with its worker number."""
    global _worker
    _worker = worker


@contextlib.contextmanager
def bind_call_sid(call_sid: str) -> Iterator[None]:
    """Tag every log line written in this context (and tasks started from it) with ``call_sid``."""
    token = call_sid_var.set(call_sid)
    try:
        yield
    finally:
        call_sid_var.reset(token)


class CallContextFilter(logging.Filter):
    """Adds ``record.call_sid`` and ``record.business`` from their context variables."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops it."""
        if not hasattr(record, "call_sid"):
            record.call_sid = call_sid_var.get()
        if not hasattr(record, "business"):
            record.business = business_var.get()
        return True


class SecretRedactor(logging.Filter):
    """Replaces every known secret value in a record's message with ``********``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the values to scrub (longest first, so overlapping values scrub whole)."""
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Scrub ``secrets`` too, and keep scrubbing the ones known before.

        A rotated secret may still be held by a running call or a client built before
        the rotation, so a secret once loaded is scrubbed for the rest of the process.
        """
        self.set_secrets([*self._secrets, *secrets])

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record in place; never drops it."""
        if not self._secrets:
            return True
        message = record.getMessage()
        scrubbed = message
        for secret in self._secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, "********")
        if scrubbed is not message and scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self._secrets:
                record.exc_text = record.exc_text.replace(secret, "********")
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with ``call_sid=…`` leading the message inside a call."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib name)
        """Format with the call's SID in front of the message, when there is one."""
        call_sid = getattr(record, "call_sid", None)
        if call_sid:
            record.message = f"call_sid={call_sid} {record.message}"
        business = getattr(record, "business", None)
        if business:
            record.message = f"business={business} {record.message}"
        if _worker is not None:
            record.message = f"worker={_worker} {record.message}"
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one JSON object."""
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_sid = getattr(record, "call_sid", None)
        if call_sid:
            entry["call_sid"] = call_sid
        business = getattr(record, "business", None)
        if business:
            entry["business"] = business
        if _worker is not None:
            entry["worker"] = _worker
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


redactor = SecretRedactor()
"""The process's redactor; :func:`configure` installs it, settings feed it their secrets."""


def configure(level: str = "INFO", fmt: str = "text", *, stream: Any = None) -> None:
    """Configure the root logger and route loguru (Pipecat's logger) into it.

    Safe to call again (e.g. once settings are validated): it replaces the handler.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(CallContextFilter())
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in ("aiohttp.access", "httpx", "httpcore", "websockets", "hpack", "openai"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    _route_loguru(numeric)


def _route_loguru(level: int) -> None:
    try:
        from loguru import logger as loguru_logger
    except ImportError:  # pragma: no cover - loguru comes with Pipecat
        return
    loguru_logger.remove()
    loguru_logger.add(_loguru_sink, level=level, format="{message}", backtrace=False)


def _loguru_sink(message: Any) -> None:
    record = message.record
    name = record["name"] or "loguru"
    target = logging.getLogger(name)
    levelno = record["level"].no
    if not target.isEnabledFor(levelno):
        return
    exc = record["exception"]
    exc_info = (exc.type, exc.value, exc.traceback) if exc and exc.type else None
    log_record = target.makeRecord(
        name,
        levelno,
        record["file"].path,
        record["line"],
        record["message"],
        (),
        exc_info,
        func=record["function"],
    )
    target.handle(log_record)
