"""What boto3's TypeSerializer / TypeDeserializer cost against hand-written attribute literals,
on the items of the two hottest paths: the stored event (ingest, once per event) and a delivery
summary (the sync worker, once per attempt). Both measured in this run; ratios reported.

Run: .venv/bin/python benchmarks/serialization.py
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from success_metrics.models.events import Event
from success_metrics.stores import events as event_store
from success_metrics.stores import items
from success_metrics.stores.deliveries import DeliveryStore

ROUNDS = 20_000


def best_of(fn: Any, rounds: int = ROUNDS, runs: int = 5) -> float:
    """Per-call seconds, best of `runs` timed loops."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def main() -> None:
    event = Event.model_validate(
        {
            "id": "evt_0001",
            "type": "supplier.subscription_started",
            "occurred_at": datetime(2026, 6, 1, 12, tzinfo=UTC).isoformat(),
            "user_id": "usr_1",
            "user_type": "supplier",
            "revenue": {"amount": "49.00", "currency": "GBP"},
            "properties": {"plan": "pro", "channel": "ads"},
        }
    )
    doc = event_store.document(event, "org_1", time.time())
    literal = event_store.item(event, "org_1", "msg_1", doc, 730)

    def by_literal() -> dict[str, Any]:
        return event_store.item(event, "org_1", "msg_1", doc, 730)

    def by_serializer() -> dict[str, Any]:
        # The same values built as plain Python, then converted (what a store would do).
        values = items.deserialize(by_literal())
        return items.serialize(values)

    summary = {
        "delivery_id": "dlv_1",
        "status": "succeeded",
        "at": 1_790_000_000,
        "event_ids": [f"evt_{n}" for n in range(100)],
    }
    store = DeliveryStore(None, "t")
    summary_item = store.summary_item("org_1", summary, None, 1_800_000_000)

    def summary_literal() -> dict[str, Any]:
        return {
            "pk": {"S": "org_1"},
            "sk": {"S": summary["delivery_id"]},
            "status": {"S": summary["status"]},
            "doc": {"S": json.dumps(summary, separators=(",", ":"))},
            "expires_at": {"N": "1800000000"},
            "time_pk": {"S": "org_1"},
            "status_pk": {"S": "org_1#succeeded"},
            "time_sk": {"S": f"{1_790_000_000:010d}#dlv_1"},
        }

    def summary_serializer() -> dict[str, Any]:
        return store.summary_item("org_1", summary, None, 1_800_000_000)

    def event_read_literal() -> dict[str, Any]:
        return json.loads(literal["body"]["S"])

    def event_read_deserializer() -> dict[str, Any]:
        return json.loads(items.deserialize(literal)["body"])

    assert summary_literal() == summary_item
    rows = [
        ("event item, write", best_of(by_literal), best_of(by_serializer)),
        ("event item, read", best_of(event_read_literal), best_of(event_read_deserializer)),
        ("delivery summary, write", best_of(summary_literal), best_of(summary_serializer)),
    ]
    print("TypeSerializer / TypeDeserializer against hand-written literals (per item)")
    print("  (event write: the library column also pays one deserialisation, an upper bound)")
    for name, hand, lib in rows:
        print(
            f"  {name:<24} literal {hand * 1e6:7.2f} us  library {lib * 1e6:7.2f} us  ratio {lib / hand:5.2f}"
        )
    print(
        "  for scale: one DynamoDB request costs about 1,000-5,000 us of client time "
        "(botocore serialisation, signing, HTTP)"
    )


if __name__ == "__main__":
    main()
