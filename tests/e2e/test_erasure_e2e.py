"""GDPR erasure end to end on the local stack: after it, the user is nowhere.

The sweep reads every table and every S3 object on the emulator, and every request the sink
received after the erasure started, looking for the user's id, device id, email and phone. It
runs in an organization of its own so the demo organization's season stays as the other
end-to-end tests expect it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from devstack.seed import post_signed
from tests.e2e.conftest import RunningStack
from tests.support.local_stack import aws, counted_metrics, sink_requests, wait_until
from tests.support.stored import item_text

# Requests that must name the user: the deletions themselves (and the OAuth token exchange).
DELETION_PLATFORMS = {"mixpanel_gdpr", "ga4_user_deletion", "google_oauth"}


def make_events(
    user: str, count: int, minutes_ago: int = 90, **fields: Any
) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return [
        {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "type": "supplier.subscription_started",
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": user,
            "user_type": "supplier",
            "revenue": {"amount": "49.00", "currency": "GBP"},
            "context": {"country": "GB", "device": "desktop", "ip": "198.51.100.23"},
            "consent": {"analytics": True, "marketing": False},
            **fields,
        }
        for i in range(count)
    ]


def stored_texts(stack: RunningStack) -> Iterator[tuple[str, str]]:
    dynamodb, s3 = aws(stack, "dynamodb"), aws(stack, "s3")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                yield table, item_text(item)
    for bucket in s3.list_buckets()["Buckets"]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"])
        for page in pages:
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"].read()
                yield (
                    f"s3://{bucket['Name']}/{obj['Key']}",
                    obj["Key"] + body.decode("utf-8", "replace"),
                )


def find(patterns: list[re.Pattern[str]], texts: Iterator[tuple[str, str]]) -> list[str]:
    return [f"{where}: {p.pattern}" for where, text in texts for p in patterns if p.search(text)]


def test_after_erasure_the_user_is_in_no_table_object_or_new_request(
    stack: RunningStack, http: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:8]
    ana, bo, device = f"usr_ana_{tag}", f"usr_bo_{tag}", f"dev_ana_{tag}"
    email, phone = f"ana.{tag}@example.com", f"+44 7700 9{tag[:5]}"
    created = stack.smctl_json("org", "create", f"Erasure E2E {tag}")
    org_id, key, secret = created["org_id"], created["api_key"], created["webhook_secret"]
    stack.smctl("org", "set-limits", org_id, "--exports-per-hour", "100")
    hook = f"/webhooks/erasure-{tag}"
    destinations = {
        "mixpanel": {
            "kind": "mixpanel",
            "project_token": f"tok-{tag}",
            "api_secret": "mp-secret",
            "gdpr_token": "mp-gdpr-oauth",
        },
        "ga4": {
            "kind": "ga4",
            "measurement_id": "G-ERASE0001",
            "api_secret": "ga-secret",
            "property_id": "424242",
            "oauth_client_id": "e2e.apps.googleusercontent.com",
            "oauth_client_secret": "oauth-secret",
            "oauth_refresh_token": "1//refresh",
        },
        "hooks": {"kind": "webhook", "url": f"{stack.sink_url}{hook}"},
    }
    for dest_id, settings in destinations.items():
        stack.smctl("dest", "put", org_id, dest_id, "--settings", json.dumps(settings))

    # Given Ana's events (one before she signed in), Bo's, and Bo's referral naming Ana
    personal = {"email": email, "phone": phone, "plan": "pro"}
    ana_events = make_events(ana, 4, anonymous_id=device, properties=personal)
    ana_events += make_events(
        ana, 1, type="user.signed_up", revenue=None, properties={"channel": "ads"}
    )
    early = make_events(ana, 1, minutes_ago=180, type="feature.used", revenue=None)
    early[0].pop("user_id")
    early[0]["anonymous_id"] = device
    bo_events = make_events(bo, 3, properties={"plan": "basic"})
    bo_events += make_events(
        bo,
        1,
        type="referral.invite_accepted",
        revenue=None,
        properties={"inviter": ana, "channel": "referral"},
    )
    everything = ana_events + early + bo_events
    sent = post_signed(http, stack.api_url, org_id, secret, {"events": everything})
    assert sent.status_code == 202, sent.text
    assert sent.json()["accepted"] == len(everything)
    wait_until(
        lambda: (
            len(
                [
                    e
                    for r in sink_requests(stack)
                    if r["path"] == hook
                    for e in json.loads(r["body"])["events"]
                ]
            )
            >= len(everything)
        ),
        120,
        "the customer webhook to receive every event",
    )
    # An export and an access request hold Ana too.
    today = date.today()
    stack.smctl(
        "export", "create", "--from", str(today - timedelta(days=1)), "--to", str(today),
        "--format", "json", "--wait", "--timeout", "180", "--api-key", key,
    )  # fmt: skip
    access = http.post(
        f"{stack.api_url}/v1/gdpr/access-requests",
        json={"user_id": ana},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert access.status_code == 202, access.text
    wait_until(
        lambda: (
            http.get(
                f"{stack.api_url}/v1/exports/{access.json()['id']}",
                headers={"Authorization": f"Bearer {key}"},
            ).json()["status"]
            == "succeeded"
        ),
        180,
        "the access request",
    )
    patterns = [
        re.compile(rf"(?<![A-Za-z0-9_]){re.escape(value)}(?![A-Za-z0-9_])")
        for value in (ana, device, email, phone)
    ]
    assert find(patterns, stored_texts(stack)), "the sweep must see Ana before the erasure"
    metrics_before = counted_metrics(stack, http, key, paying=2)  # Ana and Bo
    cutoff = len(sink_requests(stack))

    # When Ana asks to be forgotten
    receipt = stack.smctl_json("gdpr", "erase", ana, "--wait", "--timeout", "300", "--api-key", key)

    # Then every system reports done, and the receipt names her only by a keyed hash
    assert receipt["status"] == "succeeded", receipt
    assert {s["status"] for s in receipt["systems"].values()} == {"done"}
    assert receipt["systems"]["events"]["count"] == len(ana_events) + len(early)
    assert receipt["systems"]["references"]["count"] == 1
    assert receipt["systems"]["exports"]["count"] == 2
    assert ana not in json.dumps(receipt)
    shown = stack.smctl_json("gdpr", "erasure", receipt["erasure_id"], "--api-key", key)
    assert shown["subject_hash"] == receipt["subject_hash"]
    # the aggregates did not move: they hold no personal data, and other users' counts stay
    assert counted_metrics(stack, http, key, paying=2) == metrics_before
    # the platforms were asked to delete her
    after = sink_requests(stack)[cutoff:]
    kinds = {r["platform"] for r in after}
    assert {"mixpanel_gdpr", "ga4_user_deletion"} <= kinds
    assert all(r["status"] == 200 for r in after if r["platform"] in DELETION_PLATFORMS)

    # and her later events are dropped at ingest and counted, while Bo's still flow
    later = make_events(ana, 2, minutes_ago=5, properties={"email": email})
    later_bo = make_events(bo, 2, minutes_ago=5)
    answer = post_signed(http, stack.api_url, org_id, secret, {"events": later + later_bo})
    assert answer.status_code == 202, answer.text
    assert answer.json()["suppressed"] == len(later)
    assert answer.json()["accepted"] == len(later_bo)
    later_ids = {e["id"] for e in later_bo}
    wait_until(
        lambda: (
            later_ids
            <= {
                e["id"]
                for r in sink_requests(stack)[cutoff:]
                if r["path"] == hook
                for e in json.loads(r["body"])["events"]
            }
        ),
        120,
        "Bo's new events at the webhook",
    )

    # The sweep: no table, object or new outbound request holds anything of Ana
    assert find(patterns, stored_texts(stack)) == []
    outbound = [r for r in sink_requests(stack)[cutoff:] if r["platform"] not in DELETION_PLATFORMS]
    assert outbound
    assert find(patterns, iter([("sink", json.dumps(outbound))])) == []
    # Bo is intact: his events are all stored, and the referral only lost the mention
    stored_bo = [
        item
        for page in aws(stack, "dynamodb")
        .get_paginator("query")
        .paginate(
            TableName="sm-local-EventsTable",
            IndexName="ByUser",
            KeyConditionExpression="user_pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{org_id}#{bo}"}},
        )
        for item in page["Items"]
    ]
    assert len(stored_bo) == len(bo_events) + len(later_bo)
