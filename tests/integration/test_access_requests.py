"""GDPR access requests: exactly one user's data, through the export pipeline, emailed."""

from __future__ import annotations

import json
from typing import Any

from devstack.provision import Stack
from devstack.sink import Sink
from success_metrics.models.destinations import DestinationRequest
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import destinations, organizations
from tests.support import post_events
from tests.support.exports import Exports, file_bytes, run_worker
from tests.support.gdpr import ask, decision
from tests.support.sync import recent_events, run_sync


def test_an_access_request_returns_exactly_that_users_data(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,
) -> None:
    from export_request import app as exports_app
    from export_worker import app as worker_app

    # The customer's own records endpoint needs no consent: it gets ana's events even after she
    # withdraws analytics, so the delivery log holds some of hers.
    destinations.put(
        org.org_id,
        "records",
        DestinationRequest.model_validate(
            {
                "name": "records",
                "settings": {
                    "kind": "webhook",
                    "url": f"{sink.url}/webhooks/records",
                    "consent": "none",
                },
            }
        ),
    )
    ana = recent_events(6, user_id="usr_ana")
    ben = recent_events(4, user_id="usr_ben")
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": ana + ben})
    post_events(webhook_handler, org.org_id, org.webhook_secret, decision("usr_ana", False))
    organizations.set_limits(other_org.org_id, requests_per_hour=100, events_per_hour=1000)
    elsewhere = recent_events(3, user_id="usr_ana")
    post_events(webhook_handler, other_org.org_id, other_org.webhook_secret, {"events": elsewhere})
    run_sync(stack)

    answer = ask(
        authorizer_handler, org.api_key, {"user_id": "usr_ana", "notify": ["dpo@example.com"]}
    )
    assert answer.status == 202, answer
    run_worker(stack, worker_app.lambda_handler)
    job = (
        Exports(exports_app.lambda_handler, authorizer_handler, org.api_key)
        .get(answer.json["id"])
        .json
    )

    assert job["status"] == "succeeded", job
    assert job["dataset"] == "access"
    assert job["format"] == "json"
    records = json.loads(file_bytes(org.org_id, job["id"]))
    events = [r for r in records if r["record"] == "event"]
    assert {r["id"] for r in events} == {e["id"] for e in ana} | {decision("usr_ana", False)["id"]}
    assert all(r["data"]["user_id"] == "usr_ana" for r in events)
    consent_rows = [r for r in records if r["record"].startswith("consent")]
    assert {r["data"]["purpose"] for r in consent_rows} == {"analytics", "marketing"}
    deliveries = [r for r in records if r["record"] == "delivery"]
    assert deliveries
    delivered_ids = {i for r in deliveries for i in r["data"]["events"]}
    assert delivered_ids <= {e["id"] for e in ana} | {decision("usr_ana", False)["id"]}
    text = json.dumps(records)
    assert "usr_ben" not in text
    assert not any(e["id"] in text for e in ben + elsewhere)
    assert job["progress"]["rows"] == len(records)


def test_access_requests_need_the_gdpr_scope_and_a_user(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any
) -> None:
    reader = organizations.create_api_key(org.org_id, [Scope.EXPORTS_WRITE, Scope.EXPORTS_READ])

    assert ask(authorizer_handler, reader.api_key, {"user_id": "usr_ana"}).status == 403
    for body in ({}, {"user_id": ""}, {"user_id": "a b"}, {"user_id": "x", "extra": 1}, []):
        refused = ask(authorizer_handler, org.api_key, body)
        assert refused.status == 400, body
        assert refused.headers["content-type"] == "application/problem+json"


def test_the_export_api_does_not_make_access_exports(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any
) -> None:
    from export_request import app as exports_app

    api = Exports(exports_app.lambda_handler, authorizer_handler, org.api_key)
    refused = api.create(dataset="access", format="json", start="2026-01-01", end="2026-01-31")
    assert refused.status == 400
    assert "access-requests" in refused.json["detail"] or "subject" in refused.json["detail"]
