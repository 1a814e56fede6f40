"""Signed ingestion, in-process on moto, for every answer SPEC §3 defines."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest import mock

import pytest

from devstack.provision import Stack
from success_metrics import clock, sync_queue
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from tests.integration.conftest import drain, scan_all
from tests.support import Response, load_event, post_events, sample_event, signed_headers


def stored_events(stack: Stack) -> list[dict[str, Any]]:
    return scan_all(stack.physical["EventsTable"]["Ref"])


def queued_events(stack: Stack) -> list[dict[str, Any]]:
    return [
        e for body in drain(stack.physical["SyncQueue"]["Ref"]) for e in json.loads(body)["events"]
    ]


def assert_problem(response: Any, status: int, slug: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json["status"] == status
    assert response.json["type"].endswith("/" + slug)
    assert response.json["detail"]


def test_single_event_is_stored_once_with_expiry_and_queued(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    event = sample_event()

    response = post_events(webhook_handler, org.org_id, org.webhook_secret, event)

    assert response.status == 202
    assert response.json == {"accepted": 1, "duplicates": 0, "rejected": []}
    for header in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
        assert header in response.headers
    [item] = stored_events(stack)
    assert item["pk"]["S"] == f"{org.org_id}#{event['id']}"
    assert item["day_pk"]["S"].startswith(f"{org.org_id}#2026-06-14#")
    assert item["user_pk"]["S"] == f"{org.org_id}#usr_123"
    # 730 days after the event, the default retention
    assert int(item["expires_at"]["N"]) == 1781433060 + 730 * 86400
    [queued] = queued_events(stack)
    assert queued["id"] == event["id"]
    assert queued["org_id"] == org.org_id
    assert queued["category"] == "supplier"


def test_batch_with_some_invalid_events_accepts_the_valid_ones(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    batch = load_event("samples/batch")
    batch["events"].append({"id": "evt_bad", "type": "no.such_type", "occurred_at": "yesterday"})
    batch["events"].append({**sample_event(), "surprise": True})

    response = post_events(webhook_handler, org.org_id, org.webhook_secret, batch)

    assert response.status == 202
    assert response.json["accepted"] == 2
    assert [r["index"] for r in response.json["rejected"]] == [2, 3]
    locations = {tuple(e["loc"]) for e in response.json["rejected"][0]["errors"]}
    assert ("type",) in locations
    assert ("occurred_at",) in locations
    assert response.json["rejected"][1]["errors"][0]["type"] == "extra_forbidden"
    assert len(stored_events(stack)) == 2


def test_batch_with_no_valid_event_is_400_with_the_reasons(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    response = post_events(
        webhook_handler, org.org_id, org.webhook_secret, {"events": [{"id": "x"}, {"type": 1}]}
    )

    assert_problem(response, 400, "validation-failed")
    assert [r["index"] for r in response.json["rejected"]] == [0, 1]
    assert stored_events(stack) == []


def test_replayed_webhook_id_is_acknowledged_without_storing_twice(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    body = json.dumps(sample_event()).encode()
    first = post_events(
        webhook_handler, org.org_id, org.webhook_secret, None, body=body, msg_id="msg_1"
    )

    again = post_events(
        webhook_handler, org.org_id, org.webhook_secret, None, body=body, msg_id="msg_1"
    )

    assert first.status == again.status == 202
    assert again.json == first.json == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert len(stored_events(stack)) == 1
    assert len(queued_events(stack)) == 1


def test_reused_webhook_id_with_another_body_is_a_conflict(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event(), msg_id="msg_2")

    response = post_events(
        webhook_handler, org.org_id, org.webhook_secret, sample_event(), msg_id="msg_2"
    )

    assert_problem(response, 409, "conflict")
    assert len(stored_events(stack)) == 1


def test_duplicate_event_id_in_a_later_request_is_counted_not_stored(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    event = sample_event()
    post_events(webhook_handler, org.org_id, org.webhook_secret, event)

    later = post_events(
        webhook_handler, org.org_id, org.webhook_secret, {"events": [event, sample_event()]}
    )

    assert later.status == 202
    assert later.json == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert len(stored_events(stack)) == 2
    assert len(queued_events(stack)) == 2


def test_duplicate_event_id_inside_one_batch_is_stored_once(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    event = sample_event()

    response = post_events(
        webhook_handler, org.org_id, org.webhook_secret, {"events": [event, event]}
    )

    assert response.json == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert len(stored_events(stack)) == 1


def test_interrupted_delivery_is_completed_by_the_producers_retry(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    # Given a first attempt that stores the events and then fails to queue them
    body = json.dumps({"events": [sample_event(), sample_event()]}).encode()
    with mock.patch.object(sync_queue, "_send", side_effect=RuntimeError("SQS is down")):
        failed = post_events(
            webhook_handler, org.org_id, org.webhook_secret, None, body=body, msg_id="m3"
        )
    assert failed.status == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert len(stored_events(stack)) == 2

    # When the producer retries with the same webhook-id
    retried = post_events(
        webhook_handler, org.org_id, org.webhook_secret, None, body=body, msg_id="m3"
    )

    # Then the events are queued, and still stored once
    assert retried.status == 202
    assert retried.json == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert len(stored_events(stack)) == 2
    assert len(queued_events(stack)) == 2


def post_skewed(webhook_handler: Any, org: CreatedOrganization, skew: int) -> Response:
    """One signed event whose signature timestamp is `skew` seconds off the clock."""
    return post_events(
        webhook_handler,
        org.org_id,
        org.webhook_secret,
        sample_event(),
        timestamp=int(time.time()) + skew,
    )


@pytest.mark.parametrize("skew", [-301, 301, -100_000])
def test_stale_or_future_timestamps_are_401(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, skew: int
) -> None:
    assert_problem(post_skewed(webhook_handler, org, skew), 401, "unauthenticated")
    assert stored_events(stack) == []


def test_timestamps_within_tolerance_pass(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    for skew in (-290, 290):
        assert post_skewed(webhook_handler, org, skew).status == 202


def test_tampered_body_is_401(stack: Stack, org: CreatedOrganization, webhook_handler: Any) -> None:
    body = json.dumps(sample_event()).encode()
    headers = signed_headers(org.webhook_secret, body)

    response = post_events(
        webhook_handler,
        org.org_id,
        org.webhook_secret,
        None,
        body=body.replace(b"pro", b"max"),
        headers=headers,
    )

    assert_problem(response, 401, "unauthenticated")
    assert stored_events(stack) == []


def test_another_organizations_secret_is_401(
    stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization, webhook_handler: Any
) -> None:
    response = post_events(webhook_handler, org.org_id, other_org.webhook_secret, sample_event())

    assert_problem(response, 401, "unauthenticated")


def test_unknown_organization_is_indistinguishable_from_a_bad_signature(
    stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization, webhook_handler: Any
) -> None:
    unknown = post_events(webhook_handler, "org_doesnotexist00", org.webhook_secret, sample_event())
    wrong = post_events(webhook_handler, org.org_id, other_org.webhook_secret, sample_event())

    assert_problem(unknown, 401, "unauthenticated")
    assert unknown.json["detail"] == wrong.json["detail"]


def test_missing_or_malformed_signature_headers_are_401(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    body = json.dumps(sample_event()).encode()
    good = signed_headers(org.webhook_secret, body)
    variants = [
        {k: v for k, v in good.items() if k != "webhook-signature"},
        {**good, "webhook-timestamp": "soon"},
        {**good, "webhook-signature": "v2,abc"},
        {**good, "webhook-id": ""},
    ]
    for headers in variants:
        response = post_events(webhook_handler, org.org_id, "", None, body=body, headers=headers)
        assert_problem(response, 401, "unauthenticated")


def test_any_valid_signature_among_several_passes(
    stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization, webhook_handler: Any
) -> None:
    body = json.dumps(sample_event()).encode()
    headers = signed_headers(org.webhook_secret, body)
    wrong = signed_headers(
        other_org.webhook_secret,
        body,
        msg_id=headers["webhook-id"],
        timestamp=int(headers["webhook-timestamp"]),
    )
    headers["webhook-signature"] = (
        f"v1a,zzz {wrong['webhook-signature']} {headers['webhook-signature']}"
    )

    response = post_events(webhook_handler, org.org_id, "", None, body=body, headers=headers)

    assert response.status == 202


def test_rotated_secret_stays_valid_for_24_hours(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    new_secret = organizations.rotate_webhook_secret(org.org_id)

    assert (
        post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event()).status == 202
    )
    assert post_events(webhook_handler, org.org_id, new_secret, sample_event()).status == 202

    later = time.time() + 24 * 3600 + 5
    with mock.patch.object(clock, "now", return_value=later):
        old = post_events(
            webhook_handler, org.org_id, org.webhook_secret, sample_event(), timestamp=int(later)
        )
        new = post_events(
            webhook_handler, org.org_id, new_secret, sample_event(), timestamp=int(later)
        )
    assert_problem(old, 401, "unauthenticated")
    assert new.status == 202


def test_request_rate_limit_answers_429_with_headers(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    organizations.set_limits(org.org_id, requests_per_hour=2)

    first = post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event())
    second = post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event())
    third = post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event())

    assert first.headers["ratelimit-limit"] == "2"
    assert first.headers["ratelimit-remaining"] == "1"
    assert second.headers["ratelimit-remaining"] == "0"
    assert_problem(third, 429, "rate-limited")
    assert third.headers["ratelimit-limit"] == "2"
    assert third.headers["ratelimit-remaining"] == "0"
    reset = int(third.headers["ratelimit-reset"])
    assert 0 < reset <= 3600
    assert third.headers["retry-after"] == str(reset)
    assert len(stored_events(stack)) == 2


def test_event_rate_limit_answers_429_and_stores_nothing(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    organizations.set_limits(org.org_id, events_per_hour=3)
    post_events(
        webhook_handler,
        org.org_id,
        org.webhook_secret,
        {"events": [sample_event(), sample_event()]},
    )

    response = post_events(
        webhook_handler,
        org.org_id,
        org.webhook_secret,
        {"events": [sample_event(), sample_event()]},
    )

    assert_problem(response, 429, "rate-limited")
    assert "retry-after" in response.headers
    assert len(stored_events(stack)) == 2


def test_more_than_500_events_is_413(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    batch = {"events": [sample_event() for _ in range(501)]}

    response = post_events(webhook_handler, org.org_id, org.webhook_secret, batch)

    assert_problem(response, 413, "payload-too-large")
    assert stored_events(stack) == []


def test_500_events_are_accepted(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    batch = {"events": [sample_event() for _ in range(500)]}

    response = post_events(webhook_handler, org.org_id, org.webhook_secret, batch)

    assert response.json["accepted"] == 500
    assert len(queued_events(stack)) == 500


def test_body_over_one_mebibyte_is_413(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    prefix = b'{"events": [], "pad": "'
    body = prefix + b"x" * (1024 * 1024 + 1 - len(prefix) - 2) + b'"}'
    assert len(body) == 1024 * 1024 + 1

    response = post_events(webhook_handler, org.org_id, org.webhook_secret, None, body=body)

    assert_problem(response, 413, "payload-too-large")


def test_non_json_content_type_is_415(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    body = b"id=evt_1&type=user.signed_up"
    headers = {
        **signed_headers(org.webhook_secret, body),
        "content-type": "application/x-www-form-urlencoded",
    }

    response = post_events(webhook_handler, org.org_id, "", None, body=body, headers=headers)

    assert_problem(response, 415, "unsupported-media-type")


def test_malformed_json_is_400(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    response = post_events(webhook_handler, org.org_id, org.webhook_secret, None, body=b'{"id": ')

    assert_problem(response, 400, "malformed-json")


def test_unknown_route_is_a_404_problem(stack: Stack, webhook_handler: Any) -> None:
    from devstack.lambda_events import http_event
    from tests.support import invoke_http

    response = invoke_http(webhook_handler, "WebhookReceiveFunction", http_event("GET", "/v1/nope"))

    assert_problem(response, 404, "not-found")
