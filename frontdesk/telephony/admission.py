"""Which media streams get in: only those Twilio announced through a signed webhook.

A signed ``POST /twilio/voice`` (or a dial's ``action``, bringing a caller back) answers
with TwiML whose ``<Parameter>`` s carry everything the call's stream needs — caller and
called numbers, any resume context — plus a *stream token*. Twilio returns them all in
the stream's ``start.customParameters``. The token is an HMAC-SHA256, keyed with the auth
token, over the token's purpose, the call SID, the account SID, its issue time and every
other custom parameter (names and values). So the token stands alone: the stream may
reach any worker process of the machine — not only the one that answered the webhook —
and that worker checks, with nothing but the key, that the stream belongs to the call it
names, that no parameter was changed on the way (a tampered one is refused as
``bad_token``), and that the token is fresh (:data:`TOKEN_SECONDS`). It also stands on
its own when Twilio's websocket-upgrade signature is absent.

A token is admitted once *by the process that saw it*: each process remembers the
tokens it admitted until they expire. Across the machine's workers, a second stream for
a call another live worker holds is refused as a ``duplicate`` (the machine's ledger of
calls in progress, :mod:`frontdesk.delivery.calls_in_progress`). What stays open is a
captured token replayed to another worker after its call ended and within the token's
minute: that is an accepted risk — the token travels only between Twilio and us over
TLS, it is bound to one call SID and cannot change the call's numbers or context, and
the call it names is over.

The voice webhook also keeps a local *reservation* of the call, lapsing after
:data:`RESERVATION_SECONDS`. It is a capacity hint only — a call answered here whose
stream has not come yet counts against this process's room — and admission no longer
depends on it. A call admitted once is remembered (bounded, for a few hours) so that a
replayed webhook reaching the same process cannot be issued a second token.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from frontdesk.telephony.protocol import (
    MAX_CUSTOM_PARAMETERS,
    MAX_PARAMETER_NAME_CHARS,
    MAX_PARAMETER_VALUE_CHARS,
)

RESERVATION_SECONDS = 15.0
"""How long an answered call counts against this process's room while its stream comes."""
TOKEN_SECONDS = 60.0
CLOCK_SKEW_SECONDS = 5.0
TOKEN_PURPOSE = "media-stream"
TOKEN_PARAMETER = "token"
REMEMBERED_CALLS = 10_000
REMEMBERED_SECONDS = 4 * 3600.0


class Refusal(enum.StrEnum):
    """Why a media stream was refused (the label of ``frontdesk_streams_refused_total``)."""

    SIGNATURE = "signature"
    NO_START = "no_start"
    ACCOUNT = "account"
    FORMAT = "media_format"
    NO_TOKEN = "no_token"
    BAD_TOKEN = "bad_token"
    """Forged, for another call or account, or a custom parameter was changed."""
    EXPIRED_TOKEN = "expired_token"
    TOKEN_REUSED = "token_reused"
    DUPLICATE = "duplicate"
    UNAVAILABLE = "unavailable"


class CallState(enum.StrEnum):
    """What this process knows about a call SID."""

    UNKNOWN = "unknown"
    RESERVED = "reserved"
    ADMITTED = "admitted"


def stream_token(
    key: bytes,
    call_sid: str,
    account_sid: str,
    parameters: Mapping[str, str],
    issued_at: int,
) -> str:
    """The token for ``call_sid`` carrying ``parameters``, issued at ``issued_at``: ``issued.mac``.

    ``parameters`` are the stream's other custom parameters (any ``token`` among them is
    left out); each name and value is covered, so none can be changed, added or removed.
    """
    covered = sorted((k, v) for k, v in parameters.items() if k != TOKEN_PARAMETER)
    message = json.dumps(
        [TOKEN_PURPOSE, call_sid, account_sid, issued_at, covered], separators=(",", ":")
    ).encode()
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"{issued_at}.{mac}"


class Admission:
    """Stream tokens, capacity hints and the memory of admitted calls, for one process.

    Not thread-safe: used from the event loop only.
    """

    def __init__(
        self,
        *,
        key: Callable[[], bytes],
        clock: Callable[[], float] = time.time,
        reservation_seconds: float = RESERVATION_SECONDS,
        token_seconds: float = TOKEN_SECONDS,
    ) -> None:
        """Create an empty table.

        Args:
            key: The token key (the auth token), read at each use so a reload applies.
            clock: Wall-clock seconds (tokens carry their issue time, and every worker
                of a machine reads the same clock).
            reservation_seconds: How long an answered call counts against capacity here.
            token_seconds: How long a token stays valid.
        """
        self._key = key
        self._clock = clock
        self._reservation_seconds = reservation_seconds
        self._token_seconds = token_seconds
        self._reserved: dict[str, float] = {}
        self._admitted: OrderedDict[str, float] = OrderedDict()
        self._used: dict[str, float] = {}

    def state(self, call_sid: str) -> CallState:
        """Whether ``call_sid`` is reserved here, was admitted here, or is unknown here."""
        self._prune()
        if call_sid in self._admitted:
            return CallState.ADMITTED
        if call_sid in self._reserved:
            return CallState.RESERVED
        return CallState.UNKNOWN

    def reserve(self, call_sid: str, account_sid: str, parameters: Mapping[str, str]) -> str:
        """Count ``call_sid`` against this process's room and issue its stream's token.

        ``parameters`` are exactly the custom parameters the stream will carry (besides
        the token). Callers check :meth:`state` first: a call reserved or admitted
        already must not be issued another token.

        Raises:
            ValueError: A parameter would not come back whole in the stream's ``start``
                (too many, or a name or value too long), so its token could never match.
        """
        if len(parameters) + 1 > MAX_CUSTOM_PARAMETERS or any(
            len(k) > MAX_PARAMETER_NAME_CHARS or len(v) > MAX_PARAMETER_VALUE_CHARS
            for k, v in parameters.items()
        ):
            raise ValueError("stream parameters exceed what a media stream's start carries")
        now = self._clock()
        self._reserved[call_sid] = now + self._reservation_seconds
        return stream_token(self._key(), call_sid, account_sid, parameters, int(now))

    @property
    def reserved(self) -> int:
        """Calls answered here whose stream has not come here yet (a capacity hint)."""
        self._prune()
        return len(self._reserved)

    def release(self, call_sid: str) -> None:
        """Drop a reservation (the call ended before its stream came)."""
        self._reserved.pop(call_sid, None)

    def admit(
        self, call_sid: str, account_sid: str, parameters: Mapping[str, str]
    ) -> Refusal | None:
        """Admit the stream of ``call_sid`` carrying ``parameters``, or say why not.

        The token among ``parameters`` must be genuine for this call, account and
        parameters, fresh, and not admitted here before. Admission consumes the token
        (here) and any local reservation.
        """
        self._prune()
        now = self._clock()
        token = parameters.get(TOKEN_PARAMETER)
        refusal = self._check_token(call_sid, account_sid, parameters, token, now)
        if refusal is not None:
            return refusal
        assert token is not None
        self._reserved.pop(call_sid, None)
        self._used[token] = now + self._token_seconds + CLOCK_SKEW_SECONDS
        self._admitted[call_sid] = now + REMEMBERED_SECONDS
        self._admitted.move_to_end(call_sid)
        while len(self._admitted) > REMEMBERED_CALLS:
            self._admitted.popitem(last=False)
        return None

    def _check_token(
        self,
        call_sid: str,
        account_sid: str,
        parameters: Mapping[str, str],
        token: str | None,
        now: float,
    ) -> Refusal | None:
        if not token:
            return Refusal.NO_TOKEN
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or len(issued) > 12 or not mac:
            return Refusal.BAD_TOKEN
        expected = stream_token(self._key(), call_sid, account_sid, parameters, int(issued))
        if not hmac.compare_digest(expected.encode(), token.encode()):
            return Refusal.BAD_TOKEN
        age = now - int(issued)
        if age > self._token_seconds or age < -CLOCK_SKEW_SECONDS:
            return Refusal.EXPIRED_TOKEN
        if token in self._used:
            return Refusal.TOKEN_REUSED
        return None

    def _prune(self) -> None:
        now = self._clock()
        for sid in [s for s, expires in self._reserved.items() if expires < now]:
            del self._reserved[sid]
        for token in [t for t, expires in self._used.items() if expires < now]:
            del self._used[token]
        while self._admitted and next(iter(self._admitted.values())) < now:
            self._admitted.popitem(last=False)
