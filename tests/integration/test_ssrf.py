"""The SSRF guard: public addresses only, checked again at connect time, no redirects."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.sink import Sink
from success_metrics.sync import ssrf


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
        "224.0.0.1",
        "198.51.100.7",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(ssrf.UnsafeDestinationError):
        ssrf.check_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    ssrf.check_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://user:pw@hooks.example.com/",
        "https://10.0.0.5/hook",
        "https://[::ffff:10.0.0.5]/hook",
        "ftp://example.com/",
        "https:///nohost",
    ],
)
def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(ssrf.UnsafeDestinationError):
        ssrf.check_url(url)


def test_loopback_http_only_when_allowed() -> None:
    with pytest.raises(ssrf.UnsafeDestinationError):
        ssrf.check_url("http://127.0.0.1:3001/hook")
    ssrf.check_url("http://127.0.0.1:3001/hook", allow_loopback=True)
    ssrf.check_url("https://hooks.example.com/hook")


def test_a_name_resolving_to_any_internal_address_is_refused() -> None:
    def rebinding(host: str, port: int) -> Iterable[str]:
        return ["93.184.215.14", "10.0.0.8"]

    with pytest.raises(ssrf.UnsafeDestinationError):
        ssrf.resolve_public("hooks.example.com", 443, resolver=rebinding)


def test_the_guard_runs_at_connect_time_inside_the_client() -> None:
    # The name resolves to loopback only when dialled: the client must refuse to connect.
    with Sink() as sink:
        port = int(sink.url.rsplit(":", 1)[1])
        with (
            ssrf.guarded_client(resolver=lambda host, p: ["127.0.0.1"]) as client,
            pytest.raises(httpx.ConnectError, match="not a public address"),
        ):
            client.post(f"http://hooks.example.com:{port}/webhooks/a", json={})
        assert sink.requests() == []
        with ssrf.guarded_client(
            allow_loopback=True, resolver=lambda host, p: ["127.0.0.1"]
        ) as client:
            response = client.post(f"http://hooks.example.com:{port}/webhooks/a", json={"ok": 1})
        assert response.status_code == 200
        assert sink.requests()[0]["headers"]["host"].startswith("hooks.example.com")


def test_redirects_are_not_followed() -> None:
    with ssrf.guarded_client(allow_loopback=True) as client:
        assert client.follow_redirects is False


BLOCKED_V4 = [n for n in ssrf._BLOCKED if n.version == 4]
BLOCKED_V6 = [n for n in ssrf._BLOCKED if n.version == 6]


def _inside(network: ipaddress.IPv4Network | ipaddress.IPv6Network, bits: int) -> Any:
    return network.network_address + (bits % network.num_addresses)


def _wrapped(v4: ipaddress.IPv4Address) -> list[str]:
    """Every way an IPv6 address can carry an IPv4 one, in several spellings."""
    n = int(v4)
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | n),  # mapped ::ffff:a.b.c.d
        ipaddress.IPv6Address((0xFFFF << 48) | n),  # translated ::ffff:0:a.b.c.d
        ipaddress.IPv6Address(n),  # compatible ::a.b.c.d
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),  # 6to4
    ]
    texts = [str(v4)]
    for form in forms:
        texts += [str(form), form.exploded, form.exploded.upper()]
    texts.append(f"::ffff:{v4}")
    texts.append(f"::{v4}")
    texts.append(f"::ffff:0:{v4}")
    return texts


@settings(max_examples=300, deadline=None)
@given(network=st.sampled_from(BLOCKED_V4), bits=st.integers(min_value=0, max_value=2**32))
def test_every_blocked_ipv4_address_is_refused_in_every_form(
    network: ipaddress.IPv4Network, bits: int
) -> None:
    for text in _wrapped(_inside(network, bits)):
        with pytest.raises(ssrf.UnsafeDestinationError):
            ssrf.check_address(text)
        # and at connect time, when a name resolves to it
        with pytest.raises(ssrf.UnsafeDestinationError):
            ssrf.resolve_public("hooks.example.com", 443, resolver=lambda *_: [text])  # noqa: B023


@settings(max_examples=200, deadline=None)
@given(network=st.sampled_from(BLOCKED_V6), bits=st.integers(min_value=0, max_value=2**128))
def test_every_blocked_ipv6_address_is_refused(network: ipaddress.IPv6Network, bits: int) -> None:
    address = _inside(network, bits)
    for text in (str(address), address.exploded, address.exploded.upper()):
        with pytest.raises(ssrf.UnsafeDestinationError):
            ssrf.check_address(text)


@pytest.mark.parametrize(
    "address", ["::169.254.169.254", "::7f00:1", "::ffff:0:10.0.0.1", "3fff::1", "5f00::1"]
)
def test_the_forms_found_in_review_are_refused(address: str) -> None:
    with pytest.raises(ssrf.UnsafeDestinationError):
        ssrf.check_address(address)
