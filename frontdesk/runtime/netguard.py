"""The outbound URL policy: where Frontdesk may send requests.

In production every outbound URL must use TLS (``https`` / ``wss``) and must not
point at a private, loopback, link-local or otherwise non-public address — neither
literally nor through what its host name resolves to. This keeps a mistyped or
malicious setting from turning Frontdesk into a proxy into the operator's network.
Development allows plain ``http`` / ``ws`` and loopback, which is how the
emulators are reached.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Resolver = Callable[[str], Iterable[str]]
"""Maps a host name to the IP addresses it resolves to; raises ``OSError`` if it cannot."""

TLS_SCHEMES = frozenset({"https", "wss"})
PLAIN_SCHEMES = frozenset({"http", "ws"})


def system_resolver(host: str) -> list[str]:
    """Resolve ``host`` with the operating system's resolver."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


resolver_var: contextvars.ContextVar[Resolver] = contextvars.ContextVar(
    "frontdesk_resolver", default=system_resolver
)
"""The resolver the policy uses; tests that cannot reach DNS set their own."""


def is_public_address(address: str) -> bool:
    """Whether ``address`` is a globally routable unicast IP address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_outbound_url(
    url: str,
    *,
    production: bool,
    schemes: frozenset[str] = TLS_SCHEMES | PLAIN_SCHEMES,
) -> list[str]:
    """Return the reasons ``url`` is not allowed as an outbound URL (empty if it is).

    Args:
        url: The URL to check.
        production: Whether the production policy applies (TLS only, public hosts only).
        schemes: The schemes this setting may use at all, e.g. only ``https``/``http``.

    Host names that cannot be resolved right now are allowed: the check is about
    where a name points, and a name that points nowhere cannot be abused. The
    reason is returned as a warning by :func:`unresolved_hosts` instead.
    """
    problems: list[str] = []
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        return [f"scheme {scheme or '(none)'!r} is not allowed (use {allowed})"]
    if not parts.hostname:
        return ["has no host"]
    if parts.username or parts.password:
        return ["must not carry credentials in the URL"]
    if not production:
        return problems
    if scheme not in TLS_SCHEMES:
        problems.append(f"must use {'https' if scheme == 'http' else 'wss'} in production")
    host = parts.hostname
    for address in _addresses(host):
        if not is_public_address(address):
            shown = host if host == address else f"{host} ({address})"
            problems.append(f"points at a non-public address {shown}, refused in production")
            break
    return problems


def unresolved_hosts(url: str) -> bool:
    """Whether the host of ``url`` is a name that cannot be resolved right now."""
    host = urlsplit(url).hostname
    if not host or _is_ip_literal(host):
        return False
    try:
        list(resolver_var.get()(host))
    except OSError:
        return True
    return False


def _addresses(host: str) -> list[str]:
    if _is_ip_literal(host):
        return [host]
    try:
        return list(resolver_var.get()(host))
    except OSError:
        return []


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
