"""GDPR erasure: the user is gone from every table, object and new outbound request; others stay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack import iam
from devstack.provision import Stack
from devstack.sink import Fault, Sink
from success_metrics import aws, caches, destinations, organizations
from success_metrics.gdpr import erasure
from success_metrics.metrics import aggregator
from success_metrics.models.destinations import DestinationRequest
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.sync import privacy
from tests.integration.conftest import scan_all
from tests.integration.exports_support import Exports, drain, run_worker
from tests.integration.test_consent import call_gdpr, decision
from tests.integration.test_metrics import metrics_messages
from tests.integration.test_sync import admin_setup, recent_events, run_sync  # noqa: F401
from tests.support import post_events

ANA, ANA_DEVICE, ANA_EMAIL = "usr_ana", "dev_ana_7f3c", "ana.lopez@example.com"


@pytest.fixture(autouse=True)
def _no_profile_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Profiles are read fresh, so the erasure needs no cache delay before it starts."""
    monkeypatch.setenv("CONFIG_CACHE_SECONDS", "0")
    caches.reset_all()
    yield
    caches.reset_all()


def erasure_api(
    authorizer: Any, api_key: str, method: str, erasure_id: str | None = None, body: Any = None
) -> Any:
    if erasure_id is None:
        return call_gdpr(
            authorizer, api_key, method, "/v1/gdpr/erasures", "/v1/gdpr/erasures", body=body
        )
    return call_gdpr(
        authorizer,
        api_key,
        method,
        f"/v1/gdpr/erasures/{erasure_id}",
        "/v1/gdpr/erasures/{erasure_id}",
        params={"erasure_id": erasure_id},
    )


def work(stack: Stack, **options: Any) -> int:
    from gdpr_worker import app

    return run_worker(
        stack, app.lambda_handler, queue="GdprQueue", function="GdprWorkerFunction", **options
    )


def aggregate(stack: Stack) -> None:
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)


def enable_deletions(org_id: str) -> None:
    """The test destinations, with the credentials each platform's deletion API needs."""
    for dest_id, extra in {
        "mixpanel": {"gdpr_token": "mp-gdpr-oauth"},
        "ga4": {
            "property_id": "321",
            "oauth_client_id": "cid.apps.googleusercontent.com",
            "oauth_client_secret": "csecret",
            "oauth_refresh_token": "1//refresh",
        },
    }.items():
        dest = destinations.get(org_id, dest_id)
        settings = {**dest.public, **destinations.secrets(dest), "kind": dest.kind, **extra}
        destinations.put(
            org_id,
            dest_id,
            DestinationRequest.model_validate({"name": dest.name, "settings": settings}),
        )


def ana_events() -> list[dict[str, Any]]:
    """Ana: identified events (some from France, so anonymised), a sign-up, a decision, and
    two events from before she signed in, under her device id only."""
    moment = datetime.now(UTC) - timedelta(hours=2)
    personal = {"plan": "pro", "email": ANA_EMAIL, "phone": "+34 600 111 222"}
    events = recent_events(3, user_id=ANA, anonymous_id=ANA_DEVICE, properties=personal)
    events += recent_events(
        2,
        user_id=ANA,
        properties=personal,
        context={"country": "FR", "region": "Bretagne", "ip": "203.0.113.7"},
    )
    events += recent_events(
        1, type="user.signed_up", user_id=ANA, revenue=None, properties={"channel": "ads"}
    )
    events += recent_events(
        2,
        type="feature.used",
        user_id=None,
        anonymous_id=ANA_DEVICE,
        revenue=None,
        properties={"feature": "budget"},
        occurred_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    for event in events:
        if event.get("user_id") is None:
            event.pop("user_id")
    return events


def ben_events() -> list[dict[str, Any]]:
    events = recent_events(4, user_id="usr_ben", properties={"plan": "pro"})
    # Ben's referral names Ana: the mention goes, Ben's event stays.
    events += recent_events(
        1,
        type="referral.invite_accepted",
        user_id="usr_ben",
        revenue=None,
        properties={"inviter_id": ANA, "channel": "referral"},
    )
    return events


def needles(org_id: str) -> list[str]:
    org = organizations.get_organization(org_id, fresh=True)
    key = organizations.pseudonym_key(org)
    return [
        ANA,
        ANA_DEVICE,
        ANA_EMAIL,
        "600 111 222",
        privacy.pseudonym(key, ANA),
        privacy.pseudonym(key, ANA_DEVICE),
    ]


def every_stored_text(stack: Stack) -> Iterator[tuple[str, str]]:
    """(where, text) for every item of every table and every object of every bucket."""
    for logical, resource in stack.template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            for item in scan_all(stack.physical[logical]["Ref"]):
                yield logical, json.dumps(item)
        elif resource["Type"] == "AWS::S3::Bucket":
            bucket = stack.physical[logical]["Ref"]
            pages = aws.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for page in pages:
                for obj in page.get("Contents", []):
                    body = aws.s3().get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    yield f"{logical}/{obj['Key']}", obj["Key"] + body.decode("utf-8", "replace")


def traces(stack: Stack, org_id: str) -> list[str]:
    found = []
    wanted = needles(org_id)
    for where, text in every_stored_text(stack):
        found += [f"{where}: {n}" for n in wanted if n in text]
    return found


def ben_items(stack: Stack) -> list[dict[str, Any]]:
    return [
        json.loads(i["body"]["S"])
        for i in scan_all(stack.physical["EventsTable"]["Ref"])
        if json.loads(i["body"]["S"]).get("user_id") == "usr_ben"
    ]


def test_an_erased_user_is_gone_everywhere_and_everyone_else_stays(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,  # noqa: F811
) -> None:
    from export_request import app as exports_app
    from export_worker import app as export_worker

    enable_deletions(org.org_id)
    organizations.set_limits(org.org_id, exports_per_hour=100, running_exports=10)
    ana, ben = ana_events(), ben_events()
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": ana + ben})
    post_events(webhook_handler, org.org_id, org.webhook_secret, decision(ANA, True))
    aggregate(stack)
    run_sync(stack)
    assert any(ANA in r["body"] for r in sink.requests("/import"))
    # Files that hold Ana: an events export and her own access request; a metrics one does not.
    exports = Exports(exports_app.lambda_handler, authorizer_handler, org.api_key)
    today = datetime.now(UTC).date()
    span = {"start": str(today - timedelta(days=2)), "end": str(today)}
    events_export = exports.create(format="json", **span).json["id"]
    metrics_export = exports.create(dataset="metrics", **span).json["id"]
    access = call_gdpr(
        authorizer_handler,
        org.api_key,
        "POST",
        "/v1/gdpr/access-requests",
        "/v1/gdpr/access-requests",
        body={"user_id": ANA},
    )
    assert access.status == 202, access
    run_worker(stack, export_worker.lambda_handler)
    assert traces(stack, org.org_id)  # the sweep finds Ana before the erasure
    ben_before = ben_items(stack)
    metrics_before = scan_all(stack.physical["MetricsTable"]["Ref"])

    answer = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})
    assert answer.status == 202, answer
    assert answer.json["status"] == "queued"
    assert answer.json["systems"]["suppression"]["status"] == "done"
    assert ANA not in json.dumps(answer.json)
    again = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})
    assert again.status == 200
    assert again.json["erasure_id"] == answer.json["erasure_id"]  # the same erasure, not two
    cutoff = len(sink.requests())
    work(stack)

    receipt = erasure_api(authorizer_handler, org.api_key, "GET", answer.json["erasure_id"]).json
    assert receipt["status"] == "succeeded", receipt
    systems = receipt["systems"]
    assert {name: s["status"] for name, s in systems.items()} == dict.fromkeys(
        erasure.SYSTEMS, "done"
    )
    assert systems["events"]["count"] == len(ana) + 1
    assert systems["metric_claims"]["count"] > 0
    assert systems["consent"]["count"] >= 3  # current state per purpose and history
    assert systems["deliveries"]["count"] > 0
    assert systems["references"]["count"] == 1  # Ben's referral
    assert systems["exports"]["count"] == 2  # the events export and the access request
    assert systems["mixpanel"]["detail"]["mixpanel"]["task_ids"]
    assert receipt["subject_hash"] == erasure.suppression.subject_hash(
        organizations.get_organization(org.org_id), ANA
    )
    assert receipt["finished_at"]
    assert receipt["requested_at"]

    # The deletions reached each platform with every id it knew Ana by.
    deletion = sink.requests("/api/app/data-deletions/")
    [mixpanel_ids] = [json.loads(r["body"])["distinct_ids"] for r in deletion]
    key = organizations.pseudonym_key(organizations.get_organization(org.org_id))
    # (Her French events were sent pseudonymised; they carry no device id.)
    assert set(mixpanel_ids) == {ANA, f"$device:{ANA_DEVICE}", privacy.pseudonym(key, ANA)}
    assert json.loads(deletion[0]["body"])["compliance_type"] == "GDPR"
    assert deletion[0]["headers"]["authorization"] == "Bearer mp-gdpr-oauth"
    google = [json.loads(r["body"]) for r in sink.requests(GOOGLE_PATH)]
    assert {
        (g["id"]["type"], g["id"]["userId"]) for g in google if g["id"]["type"] == "USER_ID"
    } == {
        ("USER_ID", ANA),
        ("USER_ID", privacy.pseudonym(key, ANA)),
    }
    assert all(g["propertyId"] == "321" for g in google)
    assert all(r["status"] == 200 for r in sink.requests(GOOGLE_PATH))

    # The sweep: nothing of Ana in any table or object.
    assert traces(stack, org.org_id) == []
    # Ben is intact (his referral lost only the mention), and the aggregates did not move.
    ben_after = ben_items(stack)
    assert len(ben_after) == len(ben_before)
    referral = next(e for e in ben_after if e["type"] == "referral.invite_accepted")
    assert referral["properties"]["inviter_id"] == erasure.ERASED
    assert [e for e in ben_after if e["type"] != "referral.invite_accepted"] == [
        e for e in ben_before if e["type"] != "referral.invite_accepted"
    ]
    assert scan_all(stack.physical["MetricsTable"]["Ref"]) == metrics_before
    export_rows = exports.get(metrics_export).json
    assert export_rows["status"] == "succeeded"  # aggregates only: kept
    withdrawn = exports.download(events_export)
    assert withdrawn.status in (404, 410), withdrawn

    # Later events of Ana (by user id or by device) are dropped at ingest and counted.
    later = recent_events(3, user_id=ANA, properties={"email": ANA_EMAIL})
    later += recent_events(1, anonymous_id=ANA_DEVICE, user_id=None)
    for event in later:
        if event.get("user_id") is None:
            event.pop("user_id")
    more_ben = recent_events(2, user_id="usr_ben")
    result = post_events(
        webhook_handler, org.org_id, org.webhook_secret, {"events": later + more_ben}
    )
    assert result.json["suppressed"] == len(later)
    assert result.json["accepted"] == len(more_ben)
    aggregate(stack)
    run_sync(stack)
    new_requests = json.dumps(sink.requests()[cutoff:])
    platform_deletions = len(deletion) + len(sink.requests(GOOGLE_PATH)) + 1  # + token
    assert len(sink.requests()[cutoff:]) > platform_deletions  # Ben's events went out
    outbound_after = [
        r
        for r in sink.requests()[cutoff:]
        if r["platform"] not in ("mixpanel_gdpr", "ga4_user_deletion", "google_oauth")
    ]
    assert outbound_after
    assert not [n for n in needles(org.org_id) if n in json.dumps(outbound_after)]
    assert "usr_ben" in new_requests
    assert traces(stack, org.org_id) == []

    # Erasing again is harmless: a new receipt, nothing left to delete.
    second = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})
    assert second.status == 202
    work(stack)
    repeat = erasure_api(authorizer_handler, org.api_key, "GET", second.json["erasure_id"]).json
    assert repeat["status"] == "succeeded"
    assert repeat["systems"]["events"]["count"] == 0
    assert repeat["systems"]["references"]["count"] == 0
    assert traces(stack, org.org_id) == []


GOOGLE_PATH = "/analytics/v3/userDeletion/userDeletionRequests:upsert"


def test_an_erasure_interrupted_anywhere_resumes_and_ends_the_same(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enable_deletions(org.org_id)
    ana, ben = ana_events(), ben_events()
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": ana + ben})
    aggregate(stack)
    run_sync(stack)
    monkeypatch.setattr(erasure, "PAGE", 2)  # several pages of Ana's events
    saves = {"n": 0, "crash_at": set(range(2, 40, 3))}
    real_save = erasure._save

    def crashing_save(*args: Any, **kwargs: Any) -> Any:
        saves["n"] += 1
        if saves["n"] in saves["crash_at"]:
            raise RuntimeError(f"crash before save {saves['n']}")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(erasure, "_save", crashing_save)
    answer = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})
    assert answer.status == 202, answer
    invocations = work(stack, crashes_resend=True)

    assert invocations > 3  # it crashed and was resumed
    receipt = erasure.get(org.org_id, answer.json["erasure_id"])
    assert receipt.status == "succeeded", receipt
    assert traces(stack, org.org_id) == []
    assert len(ben_items(stack)) == len(ben)
    # Platform requests were not repeated for work already done... except the one in flight.
    assert 1 <= len(sink.requests("/api/app/data-deletions/")) <= 2


def test_platform_failures_follow_the_delivery_retry_rules(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,  # noqa: F811
) -> None:
    """Mixpanel 429 then success: retried in the invocation; GA4 without credentials: not
    configured; a final 4xx: failed. The receipt says so (needs_attention)."""
    events = {"events": ana_events() + ben_events()}
    post_events(webhook_handler, org.org_id, org.webhook_secret, events)
    run_sync(stack)
    dest = destinations.get(org.org_id, "mixpanel")
    settings = {**dest.public, **destinations.secrets(dest), "kind": "mixpanel"}
    destinations.put(
        org.org_id,
        "mixpanel",
        DestinationRequest.model_validate(
            {"name": "Mixpanel", "settings": {**settings, "gdpr_token": "mp-gdpr"}}
        ),
    )
    sink.set_fault(Fault(status=429, count=1, retry_after=0, path_prefix="/api/app/"))
    first = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})
    work(stack)

    receipt = erasure.get(org.org_id, first.json["erasure_id"]).view()
    assert receipt["status"] == "needs_attention"
    assert receipt["systems"]["mixpanel"]["status"] == "done"
    assert [r["status"] for r in sink.requests("/api/app/data-deletions/")] == [429, 200]
    assert receipt["systems"]["ga4"]["status"] == "not_configured"
    assert "property_id" in receipt["systems"]["ga4"]["error"]

    sink.set_fault(Fault(status=403, rate=1.0, path_prefix="/api/app/"))
    second = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": "usr_ben"})
    work(stack)
    failed = erasure.get(org.org_id, second.json["erasure_id"]).view()
    assert failed["systems"]["mixpanel"]["status"] == "failed"
    assert "403" in failed["systems"]["mixpanel"]["error"]
    assert failed["status"] == "needs_attention"


def test_a_platform_that_keeps_failing_waits_in_the_queue_then_is_recorded_failed(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    admin_setup: str,  # noqa: F811
) -> None:
    enable_deletions(org.org_id)
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": ana_events()})
    run_sync(stack)
    sink.set_fault(Fault(status=503, rate=1.0, retry_after=0, path_prefix="/analytics/"))
    answer = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})

    work(stack, max_invocations=1)
    waiting = erasure.get(org.org_id, answer.json["erasure_id"])
    assert waiting.status == "running"
    assert waiting.step == "ga4"
    assert waiting.systems["mixpanel"].status == "done"
    assert "503" in (waiting.systems["ga4"].detail["ga4"].get("error") or "")

    work(stack)  # redelivered until the last receive (GDPR_ATTEMPTS), then recorded
    final = erasure.get(org.org_id, answer.json["erasure_id"])
    assert final.status == "needs_attention"
    assert final.systems["ga4"].status == "failed"
    assert final.systems["events"].count == len(ana_events())


def test_erasure_requests_are_checked_and_scoped_to_the_caller(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    authorizer_handler: Any,
    webhook_handler: Any,
) -> None:
    for body in (None, {}, {"user_id": ""}, {"user_id": "a b"}, {"user_id": ANA, "x": 1}, [1]):
        answer = erasure_api(authorizer_handler, org.api_key, "POST", body=body)
        assert answer.status == 400, (body, answer)
        assert answer.headers["content-type"] == "application/problem+json"
    created = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": ANA})
    assert created.status == 202
    erasure_id = created.json["erasure_id"]
    assert created.headers["location"] == f"/v1/gdpr/erasures/{erasure_id}"
    assert erasure_api(authorizer_handler, other_org.api_key, "GET", erasure_id).status == 404
    assert erasure_api(authorizer_handler, org.api_key, "GET", "era_nope").status == 404
    limited = organizations.create_api_key(org.org_id, [Scope.METRICS_READ], "read only")
    answer = erasure_api(authorizer_handler, limited.api_key, "POST", body={"user_id": ANA})
    assert answer.status == 403
    # Another organization's user of the same id is not touched: suppression is per org.
    post_events(
        webhook_handler,
        other_org.org_id,
        other_org.webhook_secret,
        {"events": recent_events(2, user_id=ANA)},
    )
    assert len(drain(stack, "SyncQueue")) == 1
