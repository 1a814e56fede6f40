"""The delivery log pages by a time-ordered index (issue 16.4): a listing reads one index page
and the summaries on it, whatever the size of the log; one event's deliveries are a key lookup."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from devstack.provision import Stack
from success_metrics import aws
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.settings import get_settings
from success_metrics.stores import batch
from success_metrics.stores.deliveries import DeliveryStore
from tests.support import post_events
from tests.support.sync import recent_events, run_sync

SUMMARIES = 12_500
ATTEMPTS_EACH = 3  # 12,500 summaries + 37,500 attempts = 50,000 log items


def fill_log(org_id: str) -> None:
    """50,000 log items, shaped as the platform sync function writes them, in batches."""
    log = DeliveryStore(aws.dynamodb(), get_settings().deliveries_table)
    expires = int(time.time()) + 86_400
    start = int(time.time()) - SUMMARIES
    requests = []
    for n in range(SUMMARIES):
        status = "failed" if n % 50 == 0 else "succeeded"
        doc = {
            "delivery_id": f"dlv_{n:08d}",
            "dest_id": "hooks",
            "kind": "webhook",
            "status": status,
            "at": start + n,
            "event_ids": [f"evt_{n}"],
            "attempts": ATTEMPTS_EACH,
        }
        requests.append({"PutRequest": {"Item": log.summary_item(org_id, doc, None, expires)}})
        for attempt in range(1, ATTEMPTS_EACH + 1):
            item = log.attempt_item(org_id, {**doc, "attempt": attempt}, expires)
            requests.append({"PutRequest": {"Item": item}})
    batch.write(aws.dynamodb(), log.table, requests)


def log_items() -> int:
    pages = (
        aws.dynamodb()
        .get_paginator("scan")
        .paginate(TableName=get_settings().deliveries_table, Select="COUNT")
    )
    return sum(page["Count"] for page in pages)


def test_a_page_of_50000_log_items_is_one_index_query_and_one_batch_read(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    admin_api: Any,
    dynamodb_requests: list[dict[str, Any]],
) -> None:
    fill_log(org.org_id)
    assert log_items() == SUMMARIES * (1 + ATTEMPTS_EACH) == 50_000
    dynamodb_requests.clear()

    first = admin_api(org.api_key, "GET", "/v1/deliveries?limit=100")

    # One index query of 100 keys and one batch read of those summaries, nothing else of the log.
    log_reads = [
        o for o in dynamodb_requests if o.get("TableName") == get_settings().deliveries_table
    ]
    assert [(o["operation"], o.get("IndexName"), o.get("Limit")) for o in log_reads] == [
        ("Query", "ByTime", 100)
    ]
    batch_reads = [o for o in dynamodb_requests if o["operation"] == "BatchGetItem"]
    assert len(batch_reads) == 1
    [keys] = [len(spec["Keys"]) for spec in batch_reads[0]["RequestItems"].values()]
    assert keys == 100
    assert first.status == 200
    ids = [d["delivery_id"] for d in first.json["deliveries"]]
    assert ids == [f"dlv_{n:08d}" for n in range(SUMMARIES - 1, SUMMARIES - 101, -1)]
    assert all("payload" not in d for d in first.json["deliveries"])
    assert first.json["next"] == f"/v1/deliveries?limit=100&cursor={first.json['next_cursor']}"

    # The next page follows on, with no overlap; the status filter pages its own index.
    second = admin_api(org.api_key, "GET", first.json["next"])
    assert [d["delivery_id"] for d in second.json["deliveries"]] == [
        f"dlv_{n:08d}" for n in range(SUMMARIES - 101, SUMMARIES - 201, -1)
    ]
    dynamodb_requests.clear()
    failed = admin_api(org.api_key, "GET", "/v1/deliveries?status=failed")
    assert [
        (o["operation"], o.get("IndexName")) for o in dynamodb_requests if "IndexName" in o
    ] == [("Query", "ByStatus")]
    assert len(failed.json["deliveries"]) == 100
    assert {d["status"] for d in failed.json["deliveries"]} == {"failed"}
    assert failed.json["next"].startswith("/v1/deliveries?status=failed&limit=100&cursor=")

    # Another organization sees none of it, and cannot page through it with a cursor.
    theirs = admin_api(other_org.api_key, "GET", "/v1/deliveries")
    assert theirs.json == {"deliveries": [], "next_cursor": None, "next": None}
    stolen = admin_api(
        other_org.api_key,
        "GET",
        f"/v1/deliveries?cursor={first.json['next_cursor']}",
    )
    assert stolen.status == 400
    assert stolen.json["detail"] == "cursor is not one this API gave for this listing"
    for bad in ("x", "e30", "%00", "A" * 3000):
        answer = admin_api(org.api_key, "GET", f"/v1/deliveries?cursor={bad}")
        assert answer.status == 400, bad
        assert answer.json["type"].endswith("/validation-failed")


def test_one_events_deliveries_are_a_key_lookup(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    admin_api: Any,
    admin_setup: str,
    dynamodb_requests: list[dict[str, Any]],
) -> None:
    events = recent_events(3)
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": events})
    run_sync(stack)
    dynamodb_requests.clear()

    answer = admin_api(
        org.api_key,
        "GET",
        f"/v1/deliveries?event_id={events[1]['id']}",
    )

    assert {d["kind"]: d["state"] for d in answer.json["destinations"]} == {
        "mixpanel": "delivered",
        "ga4": "delivered",
        "webhook": "delivered",
    }
    reads = Counter(
        o["operation"]
        for o in dynamodb_requests
        if o.get("TableName") == get_settings().deliveries_table or o["operation"] == "BatchGetItem"
    )
    assert reads == Counter({"Query": 1, "BatchGetItem": 1})
    [query] = [o for o in dynamodb_requests if o["operation"] == "Query"]
    assert "IndexName" not in query
    assert json.dumps(query["ExpressionAttributeValues"]).count(events[1]["id"]) == 1
