"""Which media streams get in: only those of calls Twilio announced through a signed webhook.

A signed ``POST /twilio/voice`` *reserves* its CallSid — the reservation counts against
capacity and lapses after :data:`RESERVATION_SECONDS` if no stream arrives — and the
TwiML hands Twilio a *stream token* in a ``<Parameter>``, which Twilio returns in the
stream's ``start.customParameters``. The token is an HMAC-SHA256, keyed with the auth
token, over the call SID, the token's purpose and its issue time: it expires after
:data:`TOKEN_SECONDS` and admits one stream, for that call only. A stream is admitted
when its token is genuine, fresh, unused, and names a call that is still reserved.

A call admitted once is remembered (bounded, for a few hours) so that a replayed
webhook for a call reserved, in progress or over cannot reserve it, and so be issued a
token, again.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

RESERVATION_SECONDS = 60.0
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
    EXPIRED_TOKEN = "expired_token"
    TOKEN_REUSED = "token_reused"
    NOT_RESERVED = "not_reserved"
    DUPLICATE = "duplicate"
    UNAVAILABLE = "unavailable"


class CallState(enum.StrEnum):
    """What the edge knows about a call SID."""

    UNKNOWN = "unknown"
    RESERVED = "reserved"
    ADMITTED = "admitted"


@dataclass(slots=True)
class _Reservation:
    account_sid: str
    expires_at: float


def stream_token(key: bytes, call_sid: str, issued_at: int) -> str:
    """The token for ``call_sid`` issued at ``issued_at`` (Unix seconds): ``issued.mac``."""
    message = f"{call_sid}|{TOKEN_PURPOSE}|{issued_at}".encode()
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"{issued_at}.{mac}"


class Admission:
    """Reservations, stream tokens and the memory of admitted calls, for one process.

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
            clock: Wall-clock seconds (tokens carry their issue time).
            reservation_seconds: How long a reserved call waits for its stream.
            token_seconds: How long a token stays valid.
        """
        self._key = key
        self._clock = clock
        self._reservation_seconds = reservation_seconds
        self._token_seconds = token_seconds
        self._reserved: dict[str, _Reservation] = {}
        self._admitted: OrderedDict[str, float] = OrderedDict()
        self._used: dict[str, float] = {}

    def state(self, call_sid: str) -> CallState:
        """Whether ``call_sid`` is reserved, was admitted (live or over), or is unknown."""
        self._prune()
        if call_sid in self._admitted:
            return CallState.ADMITTED
        if call_sid in self._reserved:
            return CallState.RESERVED
        return CallState.UNKNOWN

    def reserve(self, call_sid: str, account_sid: str) -> str:
        """Reserve ``call_sid`` and issue the token for its stream.

        Callers check :meth:`state` first: a call reserved or admitted already must not
        be issued another token (its sender could race the real stream).
        """
        now = self._clock()
        self._reserved[call_sid] = _Reservation(
            account_sid=account_sid, expires_at=now + self._reservation_seconds
        )
        return stream_token(self._key(), call_sid, int(now))

    @property
    def reserved(self) -> int:
        """Calls reserved and still waiting for their stream."""
        self._prune()
        return len(self._reserved)

    def release(self, call_sid: str) -> None:
        """Drop a reservation (the call ended before its stream came)."""
        self._reserved.pop(call_sid, None)

    def admit(self, call_sid: str, account_sid: str, token: str | None) -> Refusal | None:
        """Admit the stream of ``call_sid`` presenting ``token``, or say why not.

        Admission consumes the token and the reservation: nothing admits this call again.
        """
        self._prune()
        now = self._clock()
        refusal = self._check_token(call_sid, token, now)
        if refusal is not None:
            return refusal
        assert token is not None
        reservation = self._reserved.get(call_sid)
        if reservation is None:
            return Refusal.NOT_RESERVED
        if reservation.account_sid != account_sid:
            return Refusal.ACCOUNT
        del self._reserved[call_sid]
        self._used[token] = now + self._token_seconds + CLOCK_SKEW_SECONDS
        self._admitted[call_sid] = now + REMEMBERED_SECONDS
        while len(self._admitted) > REMEMBERED_CALLS:
            self._admitted.popitem(last=False)
        return None

    def _check_token(self, call_sid: str, token: str | None, now: float) -> Refusal | None:
        if not token:
            return Refusal.NO_TOKEN
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or len(issued) > 12 or not mac:
            return Refusal.BAD_TOKEN
        expected = stream_token(self._key(), call_sid, int(issued))
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
        for sid in [s for s, r in self._reserved.items() if r.expires_at < now]:
            del self._reserved[sid]
        for token in [t for t, expires in self._used.items() if expires < now]:
            del self._used[token]
        while self._admitted and next(iter(self._admitted.values())) < now:
            self._admitted.popitem(last=False)
