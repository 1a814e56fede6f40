"""Slack URLs: https on an allowed host (SLACK_ALLOWED_HOSTS) with public addresses, checked when
configured and again when posting, and every post made through the SSRF guard's client."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from devstack.sink import Sink
from success_metrics import settings, slack
from success_metrics.models.destinations import DestinationRequest
from success_metrics.sync import ssrf
from tests.support.network import guarded_hosts

GOOD = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
REFUSED = [
    "https://127.1/services/T/B/x",
    "https://2130706433/services/T/B/x",
    "https://localhost/services/T/B/x",
    "http://hooks.slack.com/services/T/B/x",
    "https://evil.example/services/T/B/x",
    "https://user:pw@hooks.slack.com/services/T/B/x",
]
# Resolution as the tests see it: names here resolve to these addresses, nothing else resolves.
DNS = {"hooks.slack.com": "52.29.238.212", "evil.example": "93.184.215.14"}
REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Production settings, a fake DNS, and no socket dialled unless a test allows it."""
    monkeypatch.delenv("SLACK_ALLOWED_HOSTS", raising=False)
    monkeypatch.delenv("ALLOW_LOOPBACK_WEBHOOKS", raising=False)
    dns = dict(DNS)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in dns:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (dns[name], int(port or 0)))]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
        except OSError:
            # 127.1, 2130706433 and localhost are not dotted quads: this DNS does not know them
            # (the real resolver turns the first two into 127.0.0.1).
            raise socket.gaierror(socket.EAI_NONAME, "unknown name") from None
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.reset_settings()
    slack._last_post.clear()
    yield dns
    settings.reset_settings()


def no_dialling(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    dialled: list[Any] = []

    def refuse(address: Any, *args: Any, **kwargs: Any) -> Any:
        dialled.append(address)
        raise OSError("a test that dials nothing dialled")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return dialled


def slack_destination(url: str) -> DestinationRequest:
    return DestinationRequest.model_validate(
        {"name": "Ops", "settings": {"kind": "slack", "webhook_url": url}}
    )


# ------------------------------------------------------------------ configuration


def test_a_hooks_slack_com_url_passes_once_its_addresses_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up: list[str] = []
    resolve = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    slack.check_url(GOOD)
    assert slack_destination(GOOD).settings.model_dump()["webhook_url"] == GOOD
    assert looked_up == ["hooks.slack.com"] * 2  # resolved, and found public, each time


@pytest.mark.parametrize("url", REFUSED)
def test_refused_when_configured(url: str) -> None:
    with pytest.raises(ssrf.UnsafeDestinationError) as refused:
        slack.check_url(url)
    assert "SLACK_ALLOWED_HOSTS" in refused.value.detail
    assert "hooks.slack.com" in refused.value.detail  # the rule names the allowed host
    assert "/services/" not in refused.value.detail  # the path is the channel's secret
    with pytest.raises(ssrf.UnsafeDestinationError):
        slack_destination(url)


def test_an_allowed_host_that_resolves_inside_is_refused_when_configured(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment["hooks.slack.com"] = "10.0.0.1"
    with pytest.raises(ssrf.UnsafeDestinationError, match=r"10\.0\.0\.1 is not a public address"):
        slack.check_url(GOOD)
    with pytest.raises(ssrf.UnsafeDestinationError):
        slack_destination(GOOD)
    # and a host added to the allowlist gets no more trust than hooks.slack.com
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com, Slack-Proxy.Example")
    settings.reset_settings()
    environment["slack-proxy.example"] = "10.0.0.1"
    with pytest.raises(ssrf.UnsafeDestinationError, match="not a public address"):
        slack.check_url("https://slack-proxy.example/services/T/B/x")


def test_a_name_that_does_not_resolve_is_refused_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com,nowhere.example")
    settings.reset_settings()
    with pytest.raises(ssrf.UnsafeDestinationError, match="does not resolve"):
        slack.check_url("https://nowhere.example/services/T/B/x")


def test_the_allowlist_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", " Evil.Example ,")
    settings.reset_settings()
    assert settings.get_settings().slack_hosts() == {"evil.example"}
    slack.check_url("https://evil.example/services/T/B/x")
    with pytest.raises(ssrf.UnsafeDestinationError, match=r"hooks\.slack\.com is not allowed"):
        slack.check_url(GOOD)


def test_local_stack_loopback_only_when_allowed_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    local = "http://127.0.0.1:3001/services/T/B/x"
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com,127.0.0.1")
    settings.reset_settings()
    with pytest.raises(ssrf.UnsafeDestinationError, match="must be https"):
        slack.check_url(local)  # loopback not allowed: only the local stack allows it
    monkeypatch.setenv("ALLOW_LOOPBACK_WEBHOOKS", "true")
    settings.reset_settings()
    slack.check_url(local)
    for other in ("http://localhost:3001/x", "http://127.1:3001/x", "https://127.0.0.2/x"):
        with pytest.raises(ssrf.UnsafeDestinationError):
            slack.check_url(other)


def test_a_refusal_is_a_400_problem() -> None:
    with pytest.raises(ssrf.UnsafeDestinationError) as refused:
        slack.check_url(REFUSED[0])
    assert refused.value.status == 400
    assert refused.value.type_uri.endswith("/unsafe-destination")


def test_a_malformed_url_is_refused_not_an_error() -> None:
    for url in ("https://hooks.slack.com:99999/x", "https://[::1/x"):
        with pytest.raises((ssrf.UnsafeDestinationError, ValueError)):
            slack.check_url(url)
        with pytest.raises((ssrf.UnsafeDestinationError, ValidationError)):
            slack_destination(url)


# ------------------------------------------------------------------ sending


@pytest.mark.parametrize("url", REFUSED)
def test_refused_at_send_time_without_dialling(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dialled = no_dialling(monkeypatch)
    with pytest.raises(slack.SlackError, match="SLACK_ALLOWED_HOSTS") as refused:
        slack.post(url, {"text": "hello"})
    assert dialled == []
    assert "/services/" not in slack.describe(refused.value)


def test_an_allowed_host_resolving_inside_is_refused_at_connect_time(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Passed when configured, then rebound to an internal address: the guarded client refuses
    # to connect after resolving it, and dials nothing.
    slack.check_url(GOOD)
    environment["hooks.slack.com"] = "10.0.0.1"
    dialled = no_dialling(monkeypatch)
    with pytest.raises(httpx.ConnectError) as refused:
        slack.post(GOOD, {"text": "hello"})
    assert dialled == []
    assert slack.describe(refused.value) == (
        "ConnectError: refused, 10.0.0.1 is not a public address"
    )


def test_posts_go_through_the_guarded_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com,127.0.0.1")
    monkeypatch.setenv("ALLOW_LOOPBACK_WEBHOOKS", "true")
    settings.reset_settings()
    checked = guarded_hosts(monkeypatch)
    with Sink() as sink:
        sink.slack_min_interval_s = None
        slack.post(f"{sink.url}/services/T1/B1/ops", {"text": "hello"})
        [request] = sink.requests("/services/T1/B1/ops")
    assert checked == ["127.0.0.1"]
    assert json.loads(request["body"]) == {"text": "hello"}
