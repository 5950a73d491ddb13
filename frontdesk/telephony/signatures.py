"""Twilio's request signatures: which URL was signed, and whether a request is Twilio's.

Twilio signs every webhook with ``X-Twilio-Signature``: an HMAC of the exact URL it
requested (path and query still percent-encoded, as sent) followed by the sorted form
fields. Two schemes exist:

- the classic one, HMAC-SHA1 keyed with the auth token of the account the call belongs
  to — the main account or a subaccount (``AccountSid`` in the signed form says which);
- the newer one, announced by ``X-Twilio-Webhooks-Signature-Settings:
  key=<key id>,algorithm=HMAC_SHA256``, keyed with a signing key's secret.

:func:`verify` checks whichever the request declares, against the keys in settings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from urllib.parse import urlsplit

from aiohttp import web
from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from frontdesk.runtime.settings import Settings

SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureProblem(enum.StrEnum):
    """Why a signature was refused (the ``reason`` label of the rejected-requests metric)."""

    MISSING = "missing"
    FORGED = "forged"
    UNKNOWN_KEY = "unknown_key"
    UNKNOWN_ACCOUNT = "unknown_account"


def public_base(request: web.Request, public_url: str | None) -> tuple[str, str]:
    """The (scheme, host) Twilio used to reach us: ``PUBLIC_URL`` or the proxy's headers.

    Without ``PUBLIC_URL`` (development only) the ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` headers are trusted, else the Host header and our own scheme.
    """
    if public_url:
        parts = urlsplit(public_url)
        return parts.scheme, parts.netloc
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    # The Host header itself: aiohttp's request.host drops the port of an absolute-form target.
    own_host = request.headers.get("Host", request.host)
    host = request.headers.get("X-Forwarded-Host", own_host).split(",")[0].strip()
    return scheme, host


def webhook_url(request: web.Request, public_url: str | None) -> str:
    """The URL Twilio signed for a webhook: as requested, percent-encoding intact.

    ``request.path_qs`` would be a re-built URL (an empty query's ``?`` dropped, and in
    some aiohttp versions escapes decoded), which is not what Twilio signed.
    """
    scheme, host = public_base(request, public_url)
    target = request.raw_path
    if not target.startswith("/"):
        # An absolute-form target (``POST http://host/path``, sent by some proxies).
        parts = urlsplit(target)
        target = parts.path + (f"?{parts.query}" if "?" in target else "")
    return f"{scheme}://{host}{target}"


def stream_url(request: web.Request, public_url: str | None) -> str:
    """The ``wss://`` URL of our media stream, as advertised in TwiML (and signed by Twilio)."""
    _, host = public_base(request, public_url)
    return f"wss://{host}/twilio/stream"


def verify(
    settings: Settings, url: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> SignatureProblem | None:
    """Check the request's signature by the scheme it declares; the problem, if any.

    A form naming an ``AccountSid`` must be signed with that account's token; a request
    without one (the media stream upgrade) may be signed with any configured account's.
    """
    signature = headers.get(SIGNATURE_HEADER)
    if not signature:
        return SignatureProblem.MISSING
    form = dict(params)
    declared = headers.get(SIGNATURE_SETTINGS_HEADER)
    if declared:
        key_id = _setting(declared, "key")
        secret = settings.twilio_signing_keys.get(key_id or "")
        if secret is None:
            return SignatureProblem.UNKNOWN_KEY
        algorithm = get_signature_algorithm(declared)
        valid = RequestValidator(secret).validate(url, form, signature, algorithm)
        return None if valid else SignatureProblem.FORGED
    tokens = settings.twilio_auth_tokens
    account = form.get("AccountSid")
    if account:
        if account not in tokens:
            return SignatureProblem.UNKNOWN_ACCOUNT
        candidates = [tokens[account]]
    else:
        candidates = list(tokens.values())
    if any(RequestValidator(token).validate(url, form, signature) for token in candidates):
        return None
    return SignatureProblem.FORGED


def _setting(header: str, name: str) -> str | None:
    for part in header.split(","):
        key, separator, value = part.partition("=")
        if separator and key.strip() == name:
            return value.strip()
    return None
