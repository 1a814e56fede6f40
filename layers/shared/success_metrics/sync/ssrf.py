"""SSRF guard for outbound customer webhooks and other configured URLs.

A URL must be https (plain http only to loopback, and only when the local stack allows it), carry
no credentials, and resolve to public addresses only. The check runs again **at connect time**
inside the HTTP transport, on the addresses actually dialled, so DNS rebinding between the check
and the request cannot reach an internal address; redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from success_metrics.errors import ValidationFailedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
]
_LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


class UnsafeDestinationError(ValidationFailedError):
    slug = "unsafe-destination"
    title = "The destination URL is not allowed"


_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated, still routed by some)


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside every IPv4-in-IPv6 form: mapped (`::ffff:a.b.c.d`), translated
    (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_address(raw: str, *, allow_loopback: bool = False) -> IPAddress:
    original = ipaddress.ip_address(raw.split("%", 1)[0])
    address = _unwrap(original)
    if allow_loopback and any(address in n for n in _LOOPBACK if n.version == address.version):
        return address
    blocked = any(
        candidate in n
        for candidate in {original, address}
        for n in _BLOCKED
        if n.version == candidate.version
    )
    # Anything not globally routable is refused too, whatever the list above forgot.
    if blocked or not address.is_global:
        raise UnsafeDestinationError(f"{raw} is not a public address")
    return address


def _system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve_public(
    host: str, port: int, *, allow_loopback: bool = False, resolver: Resolver = _system_resolver
) -> list[IPAddress]:
    """Every address `host` resolves to, all of which must be public (or none is used)."""
    try:
        addresses = [check_address(host, allow_loopback=allow_loopback)]
    except ValueError:
        try:
            resolved = list(resolver(host, port))
        except OSError as exc:
            raise UnsafeDestinationError(f"{host} does not resolve") from exc
        if not resolved:
            raise UnsafeDestinationError(f"{host} does not resolve") from None
        addresses = [check_address(a, allow_loopback=allow_loopback) for a in resolved]
    return addresses


def check_url(url: str, *, allow_loopback: bool = False) -> None:
    """Refuse URLs that are not https, carry credentials, or name a non-public literal address."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise UnsafeDestinationError("the URL must not carry credentials")
    if not parts.hostname:
        raise UnsafeDestinationError("the URL has no host")
    loopback = False
    try:
        literal = ipaddress.ip_address(parts.hostname)
        loopback = literal.is_loopback
        check_address(parts.hostname, allow_loopback=allow_loopback)
    except ValueError:
        loopback = parts.hostname == "localhost"
    if parts.scheme == "https" or (parts.scheme == "http" and allow_loopback and loopback):
        return
    raise UnsafeDestinationError("the URL must be https")


class GuardedBackend(httpcore.SyncBackend):
    """Resolves and checks the host at connect time, then dials the checked address."""

    def __init__(
        self, *, allow_loopback: bool = False, resolver: Resolver = _system_resolver
    ) -> None:
        self.allow_loopback = allow_loopback
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_public(
                host, port, allow_loopback=self.allow_loopback, resolver=self.resolver
            )
        except UnsafeDestinationError as exc:
            raise httpcore.ConnectError(str(exc.detail)) from exc
        return super().connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)


def guarded_client(
    *, allow_loopback: bool = False, timeout: float = 10.0, resolver: Resolver = _system_resolver
) -> httpx.Client:
    """An httpx client whose every connection passes the guard, and which never redirects."""
    transport = httpx.HTTPTransport(retries=0)
    # httpx 0.28 has no public hook for the network backend: the pool is rebuilt with ours
    # (the version is pinned, and tests/unit/test_ssrf.py proves the guard is in the path).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=20,
        max_keepalive_connections=10,
        keepalive_expiry=30.0,
        network_backend=GuardedBackend(allow_loopback=allow_loopback, resolver=resolver),
    )
    return httpx.Client(
        transport=transport, timeout=httpx.Timeout(timeout, connect=3.0), follow_redirects=False
    )
