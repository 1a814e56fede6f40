"""Platform sync in-process: destinations configured through the admin API, events, and the
router and worker driven from their queues."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack import iam
from devstack.provision import Stack
from devstack.sink import Sink
from success_metrics import aws
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.sync import router, worker
from tests.support.api import admin


def configure(
    admin_handler: Any, authorizer_handler: Any, org: CreatedOrganization, sink: Sink
) -> str:
    destinations = {
        "mixpanel": {
            "kind": "mixpanel",
            "project_token": "tok",
            "api_secret": "mp-secret",
            "project_id": "42",
        },
        "ga4": {"kind": "ga4", "measurement_id": "G-TEST1234", "api_secret": "ga-secret"},
        "hooks": {
            "kind": "webhook",
            "url": f"{sink.url}/webhooks/acme",
            "event_types": ["supplier.*", "payment.*"],
        },
    }
    secret = ""
    for dest_id, settings in destinations.items():
        response = admin(
            admin_handler,
            authorizer_handler,
            org.api_key,
            "PUT",
            f"/v1/destinations/{dest_id}",
            {"name": dest_id.title(), "settings": settings},
        )
        assert response.status == 200, response
        secret = response.json.get("signing_secret", secret)
    return secret


def recent_events(n: int, **overrides: Any) -> list[dict[str, Any]]:
    moment = datetime.now(UTC) - timedelta(hours=1)
    base = {
        "type": "supplier.subscription_started",
        "user_type": "supplier",
        "properties": {"plan": "pro", "email": "someone@example.com"},
        "revenue": {"amount": "29.00", "currency": "GBP"},
        "context": {"country": "GB", "region": "London", "device": "mobile", "ip": "203.0.113.9"},
        "consent": {"analytics": True, "marketing": False},
    }
    return [
        {
            **base,
            "id": f"evt_sync_{uuid.uuid4().hex[:12]}",
            "user_id": f"usr_{i % 7}",
            "occurred_at": (moment + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **overrides,
        }
        for i in range(n)
    ]


def drain(url: str) -> list[tuple[str, int, dict[str, Any]]]:
    sqs = aws.sqs()
    found = []
    while got := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, AttributeNames=["All"]
    ).get("Messages", []):
        for m in got:
            found.append(
                (
                    m["MessageId"],
                    int(m["Attributes"]["ApproximateReceiveCount"]),
                    json.loads(m["Body"]),
                )
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def run_sync(stack: Stack) -> set[str]:
    with iam.acting_as("SyncRouterFunction"):
        for message_id, _, body in drain(stack.physical["SyncQueue"]["Ref"]):
            router.route(message_id, body)
    deliveries = [
        worker.Delivery(m, n, b) for m, n, b in drain(stack.physical["DeliveryQueue"]["Ref"])
    ]
    with iam.acting_as("PlatformSyncFunction"):
        return worker.deliver(deliveries, time.time())
