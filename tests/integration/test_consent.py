"""Consent records: decisions at ingest, the event field as the initial state, history, and the
sync path following the latest decision rather than the flag an event carries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.provision import Stack
from devstack.sink import Sink
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import consent, organizations
from success_metrics.sync import platforms
from tests.support import post_events
from tests.support.gdpr import decision, get_consent
from tests.support.sync import recent_events, run_sync


def test_a_withdrawal_stops_forwarding_even_when_later_events_carry_a_stale_flag(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    sink: Sink,
    admin_setup: str,
) -> None:
    before = recent_events(3, user_id="usr_bride")
    assert (
        post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": before}).status
        == 202
    )
    run_sync(stack)
    # The user withdraws; the producer keeps sending the old flag
    withdrawn = decision("usr_bride", False, minutes_ago=5)
    after = recent_events(4, user_id="usr_bride", consent={"analytics": True, "marketing": False})
    other = recent_events(2, user_id="usr_groom")
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": [withdrawn]})
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": after + other})

    run_sync(stack)

    imported = {
        r["properties"]["$insert_id"]
        for request in sink.requests("/import")
        for r in json.loads(request["body"])
    }
    assert {platforms.insert_id(e["id"]) for e in before} <= imported
    assert not {platforms.insert_id(e["id"]) for e in after} & imported
    assert {platforms.insert_id(e["id"]) for e in other} <= imported
    # the customer's own webhook needs analytics consent too (its default): the withdrawal holds
    hooked = [
        e["id"] for r in sink.requests("/webhooks/acme") for e in json.loads(r["body"])["events"]
    ]
    assert not {e["id"] for e in after} & set(hooked)


def test_without_a_decision_each_events_own_flag_decides_and_changes_are_recorded(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,
) -> None:
    no = recent_events(2, user_id="usr_cy", consent={"analytics": False, "marketing": False})
    yes = recent_events(2, user_id="usr_cy", consent={"analytics": True, "marketing": False})
    later = datetime.now(UTC) - timedelta(minutes=30)
    for i, event in enumerate(yes):
        event["occurred_at"] = (later + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": no + yes})

    run_sync(stack)

    imported = {
        r["properties"]["$insert_id"]
        for request in sink.requests("/import")
        for r in json.loads(request["body"])
    }
    assert imported == {platforms.insert_id(e["id"]) for e in yes}
    history = get_consent(authorizer_handler, org.api_key, "usr_cy").json["history"]
    assert [
        (h["purpose"], h["granted"], h["source"]) for h in history if h["purpose"] == "analytics"
    ] == [
        ("analytics", True, "event"),
        ("analytics", False, "event"),
    ]


def test_consent_state_and_history_through_the_api(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,
) -> None:
    # First seen through an ordinary event's field, then two decisions, one sent twice
    first = recent_events(1, user_id="usr_ana", consent={"analytics": True, "marketing": False})
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": first})
    run_sync(stack)
    grant = decision("usr_ana", True, minutes_ago=20, marketing=True)
    withdraw = decision("usr_ana", False, minutes_ago=10)
    for event in (grant, withdraw, withdraw):
        post_events(webhook_handler, org.org_id, org.webhook_secret, event)
    # A decision that arrives late (older than the recorded one) goes to history only
    late = decision("usr_ana", True, minutes_ago=25)
    post_events(webhook_handler, org.org_id, org.webhook_secret, late)

    answer = get_consent(authorizer_handler, org.api_key, "usr_ana")

    assert answer.status == 200, answer
    current = answer.json["current"]
    assert current["analytics"]["granted"] is False
    assert current["analytics"]["source_event"] == withdraw["id"]
    assert current["marketing"]["granted"] is True
    assert current["marketing"]["source_event"] == grant["id"]
    history = answer.json["history"]
    assert [(h["purpose"], h["granted"], h["source"]) for h in history] == [
        ("analytics", False, "consent.updated"),
        ("marketing", True, "consent.updated"),
        ("analytics", True, "consent.updated"),
        ("marketing", False, "event"),
        ("analytics", True, "event"),
    ]
    # another organization, a key without the scope, an unknown user
    assert get_consent(authorizer_handler, other_org.api_key, "usr_ana").status == 404
    reader = organizations.create_api_key(org.org_id, [Scope.METRICS_READ])
    assert get_consent(authorizer_handler, reader.api_key, "usr_ana").status == 403
    missing = get_consent(authorizer_handler, org.api_key, "usr_nobody")
    assert missing.status == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_expired_consent_records_are_not_read(stack: Stack, org: CreatedOrganization) -> None:
    now = datetime.now(UTC).timestamp()
    doc = decision("usr_old", False)
    consent.record_decisions(org.org_id, [doc], retention_days=1, now=now)

    [(granted, source, _)] = consent.current(org.org_id, ["usr_old"], now)["usr_old"].values()
    assert (granted, source) == (False, "consent.updated")
    # two days later (a frozen clock), TTL may not have run yet: the record is not used
    assert consent.current(org.org_id, ["usr_old"], now + 2 * 86400) == {}
