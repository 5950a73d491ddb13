"""Who may use the operator console: the token login, its signed session and CSRF tokens.

The one secret is ``CONSOLE_TOKEN``. Logging in with it sets a session cookie
``<expiry>.<nonce>.<mac>``, an HMAC-SHA256 under a key derived from the token, so
changing the token ends every session. Each session's CSRF token is an HMAC of its
nonce: a state-changing request must carry it in its form. Logging out revokes the
session in this process (its nonce is remembered, bounded, until it would expire).
Wrong tokens are counted per remote address in a bounded table; past the limit the
address waits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_SECONDS = 12 * 3600.0
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_SECONDS = 60.0
ADDRESSES_TRACKED = 4096
"""Remote addresses whose recent failures are remembered; the oldest are forgotten."""
REVOKED_KEPT = 4096
"""Logged-out sessions remembered until they expire; past this, the oldest are forgotten."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A valid console session."""

    nonce: str
    expires_at: float


class SessionKeys:
    """Signs and checks session cookies and CSRF tokens for one console token."""

    def __init__(
        self, token: str, *, ttl: float = SESSION_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        """Derive the keys from ``token``."""
        self._key = hmac.new(token.encode(), b"frontdesk console session", hashlib.sha256).digest()
        self._token = hashlib.sha256(token.encode()).digest()
        self._ttl = ttl
        self._clock = clock
        self._revoked: OrderedDict[str, float] = OrderedDict()

    @property
    def ttl(self) -> float:
        """How long a session lasts, in seconds."""
        return self._ttl

    def token_matches(self, offered: str) -> bool:
        """Whether ``offered`` is the console token (compared in constant time)."""
        return hmac.compare_digest(hashlib.sha256(offered.encode()).digest(), self._token)

    def new_session(self) -> str:
        """A fresh session cookie value."""
        expires = int(self._clock() + self._ttl)
        nonce = secrets.token_urlsafe(18)
        return f"{expires}.{nonce}.{self._mac(f'{expires}.{nonce}')}"

    def session(self, cookie: str | None) -> Session | None:
        """The session ``cookie`` stands for, or ``None`` if forged, malformed or expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        expires, nonce, mac = cookie.split(".")
        if not _same(mac, self._mac(f"{expires}.{nonce}")) or nonce in self._revoked:
            return None
        try:
            expires_at = float(int(expires))
        except ValueError:
            return None
        if expires_at <= self._clock():
            return None
        return Session(nonce=nonce, expires_at=expires_at)

    def revoke(self, session: Session) -> None:
        """End ``session`` now (logging out): its cookie is refused from here on."""
        now = self._clock()
        for nonce, expires_at in list(self._revoked.items()):
            if expires_at > now:
                break
            del self._revoked[nonce]
        self._revoked[session.nonce] = session.expires_at
        while len(self._revoked) > REVOKED_KEPT:
            self._revoked.popitem(last=False)

    def csrf(self, session: Session) -> str:
        """The CSRF token of ``session``."""
        return self._mac(f"csrf.{session.nonce}")

    def csrf_ok(self, session: Session, offered: str | None) -> bool:
        """Whether ``offered`` is ``session``'s CSRF token."""
        return offered is not None and _same(offered, self.csrf(session))

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def _same(offered: str, expected: str) -> bool:
    """Constant-time equality of a client's string with ours (any characters it sent)."""
    return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), expected.encode())


class LoginThrottle:
    """Wrong tokens per remote address in a sliding window, in bounded memory."""

    def __init__(
        self,
        *,
        allowed: int = LOGIN_FAILURES_ALLOWED,
        window: float = LOGIN_WINDOW_SECONDS,
        addresses: int = ADDRESSES_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Allow ``allowed`` failures per ``window`` seconds for each of ``addresses``."""
        self._allowed = allowed
        self._window = window
        self._addresses = addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has used up its failures for now."""
        failures = self._recent(address)
        return failures is not None and len(failures) >= self._allowed

    def failed(self, address: str) -> int:
        """Count a wrong token from ``address``; returns its failures in the window."""
        failures = self._recent(address)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=self._allowed)
            while len(self._failures) > self._addresses:
                self._failures.popitem(last=False)
        failures.append(self._clock())
        self._failures.move_to_end(address)
        return len(failures)

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
