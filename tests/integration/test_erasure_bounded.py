"""Erasure reads by key only (issue 16.4): a user with 200 anonymous ids is erased without a
table scan and with expressions whose size does not grow with the ids; erasures are rate
limited per organization."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.provision import Stack
from success_metrics.gdpr import erasure
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from success_metrics.stores.mentions import MAX_MENTIONS
from tests.integration.conftest import scan_all
from tests.support import post_events
from tests.support.gdpr import erasure_api, work
from tests.support.sync import recent_events

pytestmark = pytest.mark.usefixtures("fresh_profiles")

SUBJECT = "usr_zoe"
DEVICES = [f"dev_zoe_{n:03d}" for n in range(200)]


def anonymous(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        event.pop("user_id", None)
    return events


def stored(stack: Stack, org_id: str) -> list[dict[str, Any]]:
    docs = [json.loads(i["body"]["S"]) for i in scan_all(stack.physical["EventsTable"]["Ref"])]
    return [d for d in docs if d["org_id"] == org_id]


def send(webhook_handler: Any, org: CreatedOrganization, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 100):
        answer = post_events(
            webhook_handler, org.org_id, org.webhook_secret, {"events": events[start : start + 100]}
        )
        assert answer.status == 202, answer.json
        assert answer.json["accepted"] == len(events[start : start + 100])


def test_a_user_with_200_anonymous_ids_is_erased_without_a_scan(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    authorizer_handler: Any,
    dynamodb_requests: list[dict[str, Any]],
) -> None:
    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=1_000_000)
    # Zoe signed in on 200 devices; before signing in on each, she used it anonymously.
    zoe = [e for d in DEVICES for e in recent_events(1, user_id=SUBJECT, anonymous_id=d)]
    zoe += anonymous([e for d in DEVICES for e in recent_events(1, anonymous_id=d)])
    # Others: a referral naming Zoe, a friend who later used one of Zoe's devices, bystanders.
    others = recent_events(
        1,
        type="referral.invite_accepted",
        user_id="usr_max",
        revenue=None,
        properties={"inviter_id": SUBJECT, "channel": "referral", "nested": {"ids": [SUBJECT]}},
    )
    others += recent_events(1, user_id="usr_max", anonymous_id=DEVICES[7])
    others += recent_events(3, user_id="usr_lea", properties={"plan": SUBJECT})
    send(webhook_handler, org, zoe + others)
    assert len(stored(stack, org.org_id)) == 400 + 5
    dynamodb_requests.clear()

    created = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": SUBJECT})
    assert created.status == 202, created.json
    work(stack)
    during = list(dynamodb_requests)  # the request and the worker, not this test's own reads

    receipt = erasure_api(authorizer_handler, org.api_key, "GET", created.json["erasure_id"]).json
    assert receipt["status"] == "succeeded", receipt
    assert receipt["systems"]["events"]["count"] == 400
    assert receipt["systems"]["references"]["count"] == 2  # the referral and Max's device event
    left = {d["id"]: d for d in stored(stack, org.org_id)}
    assert len(left) == 5
    referral = next(d for d in left.values() if d["type"] == "referral.invite_accepted")
    assert referral["properties"]["inviter_id"] == erasure.ERASED
    assert referral["properties"]["nested"] == {"ids": [erasure.ERASED]}
    assert referral["user_id"] == "usr_max"
    device_event = next(d for d in left.values() if d.get("anonymous_id"))
    assert device_event["anonymous_id"] == erasure.ERASED
    assert device_event["user_id"] == "usr_max"
    # `plan` describes the event: its value is not indexed as a mention, and stays.
    assert [d["properties"]["plan"] for d in left.values() if d["user_id"] == "usr_lea"] == [
        SUBJECT
    ] * 3
    blob = json.dumps(list(left.values()))
    assert not any(d in blob for d in DEVICES)

    # No scan of any table, and every expression is the size of one key whatever the ids.
    operations = {r["operation"] for r in during}
    assert "Scan" not in operations
    assert "Query" in operations
    for request in during:
        for name in ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"):
            assert len(request.get(name, "")) < 200, request
        assert len(request.get("ExpressionAttributeValues", {})) <= 4, request
    # The mention index keeps nothing of Zoe, nor of the erased events.
    privacy = scan_all(stack.physical["PrivacyTable"]["Ref"])
    mentions = [i for i in privacy if i["pk"]["S"].startswith("mention#")]
    erased_ids = {e["id"] for e in zoe}
    assert not [i for i in mentions if i["sk"]["S"] in erased_ids]
    assert SUBJECT not in json.dumps(mentions)


def test_the_gdpr_worker_may_not_scan_the_events_table(stack: Stack) -> None:
    import boto3
    from botocore.exceptions import ClientError

    from devstack import iam

    # The role itself lacks the action: moto, judging it, refuses (as IAM would on AWS).
    frozen = iam._installed[-1].roles["GdprWorkerFunction"].credentials
    client = boto3.client(
        "dynamodb",
        region_name="eu-west-1",
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )
    with pytest.raises(ClientError) as refused:
        client.scan(TableName=stack.physical["EventsTable"]["Ref"], Limit=1)
    assert "not authorized to perform: dynamodb:Scan" in str(refused.value)


def test_an_event_mentioning_too_many_ids_is_refused_with_a_reason(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    crowded = recent_events(1, properties={"guests": [f"gst_{n}" for n in range(MAX_MENTIONS + 1)]})
    fine = recent_events(1, properties={"guests": [f"gst_{n}" for n in range(MAX_MENTIONS)]})
    answer = post_events(
        webhook_handler, org.org_id, org.webhook_secret, {"events": crowded + fine}
    )
    assert answer.status == 202
    assert answer.json["accepted"] == 1
    [rejected] = answer.json["rejected"]
    assert rejected["index"] == 0
    assert rejected["errors"][0]["type"] == "too_many_ids"
    assert "erasure index" in rejected["errors"][0]["msg"]


def test_erasures_are_rate_limited_per_organization(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    authorizer_handler: Any,
) -> None:
    organizations.set_limits(org.org_id, erasures_per_hour=3)
    for n in range(3):
        answer = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": f"u{n}"})
        assert answer.status == 202, answer.json
    limited = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": "u3"})
    assert limited.status == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert "erasures" in limited.json["detail"]
    assert int(limited.headers["retry-after"]) > 0
    # The same subject again is the erasure under way (200), not a new one: no quota needed.
    again = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": "u0"})
    assert again.status == 200
    # Another organization is not held up.
    theirs = erasure_api(authorizer_handler, other_org.api_key, "POST", body={"user_id": "u3"})
    assert theirs.status == 202
