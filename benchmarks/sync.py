"""Platform sync benchmark, in-process moto and the sink's fake platforms, in one run.

(a) requests made per 10,000 events / the minimum the platforms' limits allow
    (Mixpanel: 2000 events and 2 MB per request; GA4: 25 events and 130 kB per request, one
    client per request). Target <= 1.05.
(b) events/s delivered by the sync worker (batches as template.yaml configures them) / events/s
    of one-request-per-event delivery to the same fake platform.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import bench_env  # noqa: F401 - puts the repository on sys.path first

EVENTS = int(os.environ.get("BENCH_SYNC_EVENTS", "10000"))
USERS = int(os.environ.get("BENCH_SYNC_USERS", "200"))
BASELINE_EVENTS = int(os.environ.get("BENCH_SYNC_BASELINE_EVENTS", "1000"))


def documents(org_id: str) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(hours=3)
    return [
        {
            "id": f"evt-bench-{i:06d}",
            "type": "feature.used" if i % 3 else "supplier.subscription_renewed",
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": f"usr_{i % USERS}",
            "user_type": "supplier",
            "properties": {"feature": "seating_chart", "plan": "pro"},
            "context": {"country": "GB", "device": "mobile"},
            "consent": {"analytics": True},
            "category": "engagement",
            "org_id": org_id,
            "received_at": int(time.time()),
        }
        for i in range(EVENTS)
    ]


def minimum_requests(docs: list[dict[str, Any]]) -> dict[str, int]:
    from success_metrics.sync import platforms

    mp_bytes = sum(
        len(json.dumps(platforms.mixpanel_record(d), separators=(",", ":"))) + 1 for d in docs
    )
    per_user = Counter(d["user_id"] for d in docs)
    return {
        "mixpanel": max(
            math.ceil(len(docs) / platforms.MIXPANEL_MAX_EVENTS),
            math.ceil(mp_bytes / platforms.MIXPANEL_MAX_BYTES),
        ),
        "ga4": sum(math.ceil(n / platforms.GA4_MAX_EVENTS) for n in per_user.values()),
    }


def main() -> None:
    from moto import mock_aws

    from devstack.provision import provision
    from devstack.sink import Sink
    from devstack.template import functions, load
    from success_metrics import aws, caches, sync_queue
    from success_metrics.models.destinations import DestinationRequest
    from success_metrics.stores import destinations, organizations
    from success_metrics.sync import router, worker

    batch_size = next(
        int(props.get("BatchSize", 10))
        for f in functions(load())
        if f.logical_id == "PlatformSyncFunction"
        for props in f.events_of("SQS").values()
    )
    with mock_aws(), Sink() as sink:
        os.environ.update(
            {
                "MIXPANEL_API_URL": sink.url,
                "GA4_API_URL": sink.url,
                "ALLOW_LOOPBACK_WEBHOOKS": "true",
            }
        )
        caches.reset_all()
        stack = provision(prefix="bench")
        os.environ.update(stack.all_environment())
        caches.reset_all()
        org = organizations.create_organization("Bench Sync")
        for dest_id, settings in {
            "mixpanel": {
                "kind": "mixpanel",
                "project_token": "t",
                "api_secret": "s",
                "project_id": "1",
            },
            "ga4": {"kind": "ga4", "measurement_id": "G-BENCH01", "api_secret": "s"},
        }.items():
            destinations.put(
                org.org_id,
                dest_id,
                DestinationRequest.model_validate({"name": dest_id, "settings": settings}),
            )
        docs = documents(org.org_id)
        bodies = list(sync_queue.pack(org.org_id, "bench", (json.dumps(d) for d in docs)))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for i, body in enumerate(bodies):
                router.route(f"bench-{i}", json.loads(body))
        sqs = aws.sqs()
        url = stack.physical["DeliveryQueue"]["Ref"]
        queued = []
        while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            queued += [worker.Delivery(m["MessageId"], 1, json.loads(m["Body"])) for m in got]
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            for start in range(0, len(queued), batch_size):
                assert not worker.deliver(queued[start : start + batch_size], time.time())
        batched_seconds = time.perf_counter() - started
        made = {"mixpanel": len(sink.requests("/import")), "ga4": len(sink.requests("/mp/collect"))}
        sample = docs[:BASELINE_EVENTS]
        client = worker.client()
        from success_metrics.sync import platforms

        started = time.perf_counter()
        for doc in sample:  # one request per event, same client, same fake platform
            [batch] = list(platforms.mixpanel_batches([doc]))
            platforms.send_mixpanel(client, sink.url, {"api_secret": "s"}, "1", batch)
        single_seconds = time.perf_counter() - started

    minimum = minimum_requests(docs)
    print(f"{EVENTS} events from {USERS} users; delivery batch size {batch_size} (template.yaml)")
    for platform in ("mixpanel", "ga4"):
        ratio = made[platform] / minimum[platform]
        print(
            f"(a) {platform}: {made[platform]} requests / minimum {minimum[platform]} = {ratio:.3f} "
            f"(target <= 1.05)"
        )
    batched_rate = 2 * EVENTS / batched_seconds  # each event went to both platforms
    single_rate = len(sample) / single_seconds
    print(
        f"(b) sync worker {batched_rate:,.0f} event-deliveries/s / one request per event "
        f"{single_rate:,.0f}/s = {batched_rate / single_rate:.1f}"
    )


if __name__ == "__main__":
    main()
