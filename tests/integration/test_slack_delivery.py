"""Slack on moto in-process: alerts and the digest reach the sink's Slack through the SSRF guard's
client; a URL outside the rule (https, SLACK_ALLOWED_HOSTS, public addresses) is a 400 problem,
or an smctl error, and nothing is stored or changed."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from devstack import iam
from devstack.provision import Stack
from devstack.sink import Sink
from smctl import app as cli
from success_metrics import clock
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import destinations, organizations
from success_metrics.sync import alerts, ssrf
from tests.support.api import admin
from tests.support.network import guarded_hosts

REFUSED = [
    "https://127.1/services/T/B/x",
    "https://2130706433/services/T/B/x",
    "https://localhost/services/T/B/x",
    "http://hooks.slack.com/services/T/B/x",
    "https://evil.example/services/T/B/x",
    "https://slack-proxy.example/services/T/B/x",  # allowed below, but resolves to 10.0.0.1
]


@pytest.fixture
def resolving_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """`slack-proxy.example` is an allowed host that resolves to 10.0.0.1."""
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com,127.0.0.1,slack-proxy.example")
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slack-proxy.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", int(port or 0)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    from success_metrics import caches

    caches.reset_all()


def put_slack(
    admin_handler: Any, authorizer_handler: Any, org: CreatedOrganization, url: str
) -> Any:
    return admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "PUT",
        "/v1/destinations/ops",
        {"name": "Ops channel", "settings": {"kind": "slack", "webhook_url": url}},
    )


def test_alerts_and_the_digest_reach_the_local_slack_through_the_guarded_client(
    stack: Stack,
    org: CreatedOrganization,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from success_metrics.metrics import digest

    sink.slack_min_interval_s = None
    created = put_slack(admin_handler, authorizer_handler, org, f"{sink.url}/services/T1/B1/ops")
    assert created.status == 200, created.json
    organizations.set_slack_webhook(org.org_id, f"{sink.url}/services/T1/B1/digest")
    checked = guarded_hosts(monkeypatch)

    with iam.acting_as("PlatformSyncFunction"):
        posted = alerts.post(org.org_id, "Deliveries to *Mixpanel* keep failing")
    with iam.acting_as("DailyDigestFunction"):
        summary = digest.run(clock.now())

    assert posted == 2
    assert summary["digests"] == 1
    assert summary["failed"] == 0
    assert checked == ["127.0.0.1"] * 3  # every post connected through the guard
    [ops] = sink.requests("/services/T1/B1/ops")
    assert json.loads(ops["body"])["text"] == "Deliveries to *Mixpanel* keep failing"
    texts = [json.loads(r["body"])["text"] for r in sink.requests("/services/T1/B1/digest")]
    assert texts[0] == "Deliveries to *Mixpanel* keep failing"
    assert len(texts) == 2  # the alert, then the digest
    assert texts[1] != texts[0]


@pytest.mark.parametrize("url", REFUSED)
def test_a_disallowed_slack_url_is_a_400_problem_and_nothing_is_stored(
    stack: Stack,
    org: CreatedOrganization,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    resolving_inside: None,
    url: str,
) -> None:
    good = f"{sink.url}/services/T1/B1/ops"
    assert put_slack(admin_handler, authorizer_handler, org, good).status == 200
    before = destinations.get(org.org_id, "ops")

    refused = put_slack(admin_handler, authorizer_handler, org, url)
    fresh = admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "PUT",
        "/v1/destinations/new",
        {"name": "New", "settings": {"kind": "slack", "webhook_url": url}},
    )

    for answer in (refused, fresh):
        assert answer.status == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json["type"].endswith("/unsafe-destination")
        assert "SLACK_ALLOWED_HOSTS" in answer.json["detail"]
        assert "/services/" not in answer.json["detail"]
    # nothing stored, nothing changed
    assert [d.dest_id for d in destinations.list_all(org.org_id)] == ["ops"]
    after = destinations.get(org.org_id, "ops")
    assert after == before
    assert destinations.secrets(after)["webhook_url"] == good


@pytest.mark.parametrize("url", REFUSED)
def test_smctl_set_slack_refuses_a_disallowed_url_and_stores_nothing(
    stack: Stack,
    org: CreatedOrganization,
    sink: Sink,
    resolving_inside: None,
    capsys: pytest.CaptureFixture[str],
    url: str,
) -> None:
    good = f"{sink.url}/services/T1/B1/digest"
    assert cli.main(["org", "set-slack", org.org_id, good, "--no-local"]) == 0
    capsys.readouterr()

    code = cli.main(["org", "set-slack", org.org_id, url, "--no-local"])
    err = capsys.readouterr().err

    assert code == 1
    assert err.startswith("smctl: Slack webhooks must be https URLs on ")
    assert "SLACK_ALLOWED_HOSTS" in err
    assert err.count("\n") == 1
    stored = organizations.get_organization(org.org_id, fresh=True)
    assert organizations.slack_webhook(stored) == good


@pytest.mark.parametrize("url", REFUSED)
def test_the_organization_store_itself_refuses_a_disallowed_slack_url(
    stack: Stack, org: CreatedOrganization, sink: Sink, resolving_inside: None, url: str
) -> None:
    # The rule lives where the URL is stored, so no caller (seed, a script, a future route)
    # can put an unchecked URL in the profile.
    good = f"{sink.url}/services/T1/B1/digest"
    organizations.set_slack_webhook(org.org_id, good)
    with pytest.raises(ssrf.UnsafeDestinationError, match="SLACK_ALLOWED_HOSTS"):
        organizations.set_slack_webhook(org.org_id, url)
    stored = organizations.get_organization(org.org_id, fresh=True)
    assert organizations.slack_webhook(stored) == good
    organizations.set_slack_webhook(org.org_id, None)  # removing needs no check
    assert organizations.get_organization(org.org_id, fresh=True).slack_webhook is None
