"""Platform sync on moto against the sink's fake platforms: destinations, fan-out, delivery."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from devstack.provision import Stack
from devstack.sink import Fault, Sink
from smctl import app as cli
from smctl.commands.dlq import dead_letter_url
from success_metrics import aws
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import organizations
from success_metrics.sync import delivery_log, platforms
from tests.support import post_events
from tests.support.api import admin
from tests.support.sync import drain, recent_events, run_sync


def test_events_reach_every_destination_in_its_own_format(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    events = recent_events(30) + recent_events(
        5, type="feature.used", revenue=None, properties={"feature": "checklist"}
    )
    assert (
        post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": events}).status
        == 202
    )

    assert run_sync(stack) == set()

    [mp] = sink.requests("/import")
    assert mp["headers"]["content-encoding"] == "gzip"
    assert mp["query"] == {"strict": "1", "project_id": "42"}
    records = json.loads(mp["body"])
    assert len(records) == 35
    assert {r["properties"]["$insert_id"] for r in records} == {
        platforms.insert_id(e["id"]) for e in events
    }
    assert sink.mixpanel_insert_ids()
    assert all(n == 1 for n in sink.mixpanel_insert_ids().values())
    ga4 = sink.requests("/mp/collect")
    assert sum(len(json.loads(r["body"])["events"]) for r in ga4) == 35
    assert all(len(json.loads(r["body"])["events"]) <= 25 for r in ga4)
    assert len(ga4) == 7  # one request per user (client id), 7 users
    assert json.loads(ga4[0]["body"])["events"][0]["name"] in {
        "supplier_subscription_started",
        "feature_used",
    }
    [hook] = sink.requests("/webhooks/acme")
    delivered = json.loads(hook["body"])
    assert [e["type"] for e in delivered["events"]] == [
        "supplier.subscription_started"
    ] * 30  # filter
    Webhook(admin_setup).verify(hook["body"], hook["headers"])


def test_no_consent_means_no_analytics_and_eu_users_are_anonymised(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    refused = recent_events(3, consent={"analytics": False})
    european = recent_events(
        2, context={"country": "FR", "region": "Bretagne", "ip": "203.0.113.7"}, user_id="usr_paris"
    )
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": refused + european})

    run_sync(stack)

    records = json.loads(sink.requests("/import")[0]["body"])
    assert {r["properties"]["$insert_id"] for r in records} == {
        platforms.insert_id(e["id"]) for e in european
    }
    for record in records:
        assert record["properties"]["distinct_id"].startswith("anon_")
        assert "usr_paris" not in json.dumps(record)
        assert "ip" not in record["properties"]
        assert "email" not in record["properties"]
        assert "$region" not in record["properties"]
    # The customer's own webhook (analytics consent by default) gets the consented events,
    # anonymised like everywhere else
    hook_events = json.loads(sink.requests("/webhooks/acme")[0]["body"])["events"]
    assert {e["id"] for e in hook_events} == {e["id"] for e in european}
    assert all(e["user_id"].startswith("anon_") for e in hook_events)


def test_retryable_failures_are_retried_in_the_invocation(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    sink.set_fault(Fault(status=503, count=2, path_prefix="/import"))
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(4)})

    assert run_sync(stack) == set()

    statuses = [r["status"] for r in sink.requests("/import")]
    assert statuses == [503, 503, 200]
    assert all(n == 1 for n in sink.mixpanel_insert_ids().values())
    [mp_delivery] = [d for d in delivery_log.list_deliveries(org.org_id) if d["kind"] == "mixpanel"]
    assert mp_delivery["status"] == "succeeded"


def test_a_failing_destination_never_holds_up_the_others_and_goes_back_to_the_queue(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    sink.set_fault(Fault(status=500, rate=1.0, path_prefix="/webhooks/"))
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(3)})

    retry = run_sync(stack)

    assert len(retry) == 1  # only the webhook delivery returns to the queue
    assert len(sink.requests("/import")) == 1
    assert len(sink.requests("/mp/collect")) >= 1
    [hook] = [d for d in delivery_log.list_deliveries(org.org_id) if d["kind"] == "webhook"]
    assert hook["status"] == "retrying"
    webhook_ids = {r["headers"]["webhook-id"] for r in sink.requests("/webhooks/")}
    assert len(webhook_ids) == 1  # the same webhook-id on every retry


def test_final_4xx_is_recorded_and_not_retried(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    sink.set_fault(Fault(status=410, rate=1.0, path_prefix="/webhooks/"))
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(2)})

    assert run_sync(stack) == set()

    assert len(sink.requests("/webhooks/")) == 1
    [hook] = delivery_log.list_deliveries(org.org_id, status="failed")
    assert hook["status_code"] == 410


def test_breaker_opens_under_a_full_outage_and_alerts_slack(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    organizations.set_slack_webhook(org.org_id, f"{sink.url}/services/T1/B1/ops")
    sink.set_fault(Fault(status=500, rate=1.0, path_prefix="/webhooks/"))
    for _ in range(3):
        post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(1)})

    retry = run_sync(stack)

    hook_calls = len(sink.requests("/webhooks/"))
    assert hook_calls == 5  # 3 attempts, 2 more: then the breaker opened and stopped the calls
    assert len(retry) == 3
    alerts = [json.loads(r["body"]) for r in sink.requests("/services/T1/B1/ops")]
    assert any("circuit breaker is open" in a["text"] for a in alerts)


def test_destination_api_never_echoes_secrets_and_is_scoped(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
) -> None:
    body = {
        "name": "Mixpanel EU",
        "settings": {
            "kind": "mixpanel",
            "project_token": "t0k",
            "api_secret": "s3cr3t-value",
            "region": "eu",
        },
    }
    created = admin(
        admin_handler, authorizer_handler, org.api_key, "PUT", "/v1/destinations/mp-eu", body
    )
    listed = admin(admin_handler, authorizer_handler, org.api_key, "GET", "/v1/destinations")
    theirs = admin(
        admin_handler, authorizer_handler, other_org.api_key, "GET", "/v1/destinations/mp-eu"
    )
    metrics_only = organizations.create_api_key(org.org_id, [Scope.METRICS_READ])
    forbidden = admin(
        admin_handler, authorizer_handler, metrics_only.api_key, "GET", "/v1/destinations"
    )
    bad = admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "PUT",
        "/v1/destinations/x",
        {"name": "x", "settings": {"kind": "webhook", "url": "https://10.0.0.1/hook"}},
    )
    gone = admin(admin_handler, authorizer_handler, org.api_key, "DELETE", "/v1/destinations/mp-eu")

    assert created.status == 200
    assert "s3cr3t-value" not in json.dumps(created.json) + json.dumps(listed.json)
    assert created.json["secrets_set"] == ["project_token", "api_secret"]
    assert created.json["settings"] == {"project_id": None, "region": "eu"}
    assert [d["dest_id"] for d in listed.json["destinations"]] == ["mp-eu"]
    assert theirs.status == 404
    assert forbidden.status == 403
    assert bad.status == 400
    assert "public address" in bad.json["detail"]
    assert gone.status == 204


def test_deliveries_api_lists_filters_and_retries_a_failed_delivery(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,
) -> None:
    # Given a webhook delivery that failed for good (410)
    sink.set_fault(Fault(status=410, rate=1.0, path_prefix="/webhooks/"))
    events = recent_events(2)
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": events})
    run_sync(stack)
    failed = admin(
        admin_handler, authorizer_handler, org.api_key, "GET", "/v1/deliveries?status=failed"
    )
    [delivery] = failed.json["deliveries"]
    per_event = admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "GET",
        f"/v1/deliveries?event_id={events[0]['id']}",
    )
    states = {d["kind"]: d["state"] for d in per_event.json["destinations"]}
    assert states == {"mixpanel": "delivered", "ga4": "delivered", "webhook": "failed"}

    # When the endpoint is fixed and the delivery is retried through the API
    sink.set_fault(None)
    retried = admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "POST",
        f"/v1/deliveries/{delivery['delivery_id']}/retry",
    )
    assert retried.status == 202
    run_sync(stack)

    # Then the events arrive, under the same webhook-id
    hooks = sink.requests("/webhooks/")
    assert [r["status"] for r in hooks] == [410, 200]
    assert hooks[0]["headers"]["webhook-id"] == hooks[1]["headers"]["webhook-id"]
    after = admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "GET",
        f"/v1/deliveries?event_id={events[0]['id']}",
    )
    assert {d["kind"]: d["state"] for d in after.json["destinations"]}["webhook"] == "delivered"
    bad = admin(admin_handler, authorizer_handler, org.api_key, "GET", "/v1/deliveries?status=lost")
    assert bad.status == 400


def test_dead_letters_can_be_listed_and_replayed_with_smctl(
    stack: Stack, org: CreatedOrganization, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = aws.sqs()
    dlq = dead_letter_url(stack.physical["DeliveryQueue"]["Ref"])
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=json.dumps(
            {
                "org_id": org.org_id,
                "dest_id": "hooks",
                "delivery_id": "dlv_x",
                "kind": "webhook",
                "events": [],
            }
        ),
    )

    assert cli.main(["dlq", "list", "--no-local", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert cli.main(["dlq", "replay", "--no-local", "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)

    assert listed["approximate"] == 1
    assert listed["sample"][0]["delivery_id"] == "dlv_x"
    assert replayed["replayed"] == 1
    [(_, _, body)] = drain(stack.physical["DeliveryQueue"]["Ref"])
    assert body["delivery_id"] == "dlv_x"


def test_an_endpoint_failing_for_five_days_is_disabled_with_an_alert(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, sink: Sink, admin_setup: str
) -> None:
    from success_metrics.stores import destinations

    organizations.set_slack_webhook(org.org_id, f"{sink.url}/services/T1/B1/ops")
    sink.set_fault(Fault(status=404, rate=1.0, path_prefix="/webhooks/"))
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(1)})
    run_sync(stack)
    hooks = destinations.get(org.org_id, "hooks")
    assert hooks.failing_since is not None
    assert hooks.enabled

    # Five days later, still failing
    destinations.save(hooks.model_copy(update={"failing_since": hooks.failing_since - 5 * 86400}))
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(1)})
    run_sync(stack)

    disabled = destinations.get(org.org_id, "hooks")
    assert not disabled.enabled
    assert "every delivery failed since" in (disabled.disabled_reason or "")
    assert any(
        "was disabled" in json.loads(r["body"])["text"]
        for r in sink.requests("/services/T1/B1/ops")
    )
    assert destinations.get(org.org_id, "mixpanel").failing_since is None  # the others are fine


def test_customer_webhooks_are_gated_by_the_consent_they_declare(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
) -> None:
    # Given three webhook endpoints: the default (analytics), marketing, and no consent gate
    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=1_000_000)
    for dest_id, consent in (("default", None), ("marketing", "marketing"), ("open", "none")):
        settings: dict[str, Any] = {"kind": "webhook", "url": f"{sink.url}/webhooks/{dest_id}"}
        if consent:
            settings["consent"] = consent
        answer = admin(
            admin_handler,
            authorizer_handler,
            org.api_key,
            "PUT",
            f"/v1/destinations/{dest_id}",
            {"name": dest_id, "settings": settings},
        )
        assert answer.status == 200, answer
    both = recent_events(2, consent={"analytics": True, "marketing": True})
    analytics_only = recent_events(2, consent={"analytics": True, "marketing": False})
    none = recent_events(2, consent={"analytics": False, "marketing": False})
    events = both + analytics_only + none
    assert (
        post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": events}).status
        == 202
    )
    # When the events are routed and delivered
    assert run_sync(stack) == set()

    # Then each endpoint received exactly the events its consent allows
    def received(dest_id: str) -> set[str]:
        return {
            e["id"]
            for r in sink.requests(f"/webhooks/{dest_id}")
            for e in json.loads(r["body"])["events"]
        }

    ids = lambda group: {e["id"] for e in group}  # noqa: E731
    assert received("default") == ids(both) | ids(analytics_only)
    assert received("marketing") == ids(both)
    assert received("open") == ids(events)

    # And the delivery log says where every withheld event went, and why: per endpoint, each
    # event the gate kept back is "withheld" with its reason, the others delivered.
    def where(event_id: str) -> dict[str, tuple[str, str | None]]:
        answer = admin(
            admin_handler,
            authorizer_handler,
            org.api_key,
            "GET",
            f"/v1/deliveries?event_id={event_id}",
        )
        assert answer.status == 200, answer
        return {d["dest_id"]: (d["state"], d["reason"]) for d in answer.json["destinations"]}

    no_marketing = ("withheld", "the event does not carry marketing consent")
    no_analytics = ("withheld", "the event does not carry analytics consent")
    assert where(analytics_only[0]["id"]) == {
        "default": ("delivered", None),
        "marketing": no_marketing,
        "open": ("delivered", None),
    }
    assert where(none[0]["id"]) == {
        "default": no_analytics,
        "marketing": no_marketing,
        "open": ("delivered", None),
    }
    withheld = admin(
        admin_handler, authorizer_handler, org.api_key, "GET", "/v1/deliveries?status=withheld"
    ).json["deliveries"]
    assert {d["dest_id"] for d in withheld} == {"default", "marketing"}
    assert all(d["attempts"] == 0 for d in withheld)
    # Nothing to retry: a clear conflict, not a 404 or a resend.
    retried = admin(
        admin_handler,
        authorizer_handler,
        org.api_key,
        "POST",
        f"/v1/deliveries/{withheld[0]['delivery_id']}/retry",
    )
    assert retried.status == 409, retried
    assert "withheld" in retried.json["detail"]
