"""The couple funnel and the couples' booking cohorts, from each couple's first time at each
step: signed up (`user.signed_up` as a couple) -> wedding created -> vendor searched -> vendor
booked (docs/metrics.md).

A couple's ledger (an item of the claims table, `ledger|couple|<user>`) keeps the earliest event
of each step; replaying it gives the counters the aggregator adds, all on the couple's signup
day (a couple enters the funnel when it signs up), so a range's funnel is the sum of its days:

- `fun|signed_up`, then `fun|<step>` for each later step reached in order (each step at or after
  the one before it), and `funt|<step>|<bucket>`: the time since the previous step, in buckets of
  about 9 % width (`bucket`), for the median;
- `cplcoh|<k>`: the couple's first booking came k whole months after its signup month.

Late events only move counters between these names: the earliest time of a step replaces a
later one, and the replay is diffed with what was applied before, as for subscriptions.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from success_metrics.metrics.contributions import clean

STEPS = ("signed_up", "wedding_created", "vendor_searched", "vendor_booked")
TYPES = {
    "couple.wedding_created": "wedding_created",
    "couple.vendor_searched": "vendor_searched",
    "couple.vendor_booked": "vendor_booked",
}
BUCKETS_PER_DOUBLING = 8  # bucket b holds durations in [2^(b/8), 2^((b+1)/8)) minutes: +9 %
Movements = dict[str, dict[str, Decimal]]


def ledger_key(user_id: str) -> str:
    return f"ledger|couple|{clean(user_id, 128)}"


def step_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The funnel step an event document is, as a ledger entry, or None."""
    if not doc.get("user_id"):
        return None
    event_type = str(doc.get("type"))
    step = TYPES.get(event_type)
    if event_type == "user.signed_up" and doc.get("user_type") == "couple":
        step = "signed_up"
    if step is None:
        return None
    moment = datetime.fromisoformat(str(doc["occurred_at"]).replace("Z", "+00:00"))
    day = moment.date().isoformat()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return {"step": step, "at": moment.timestamp(), "day": day, "id": str(doc["id"])}


def merge(
    kept: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """The earliest entry of each step (ties broken by event id); whether it changed."""
    first = {e["step"]: e for e in kept}
    changed = False
    for entry in entries:
        current = first.get(entry["step"])
        if current is None or (entry["at"], entry["id"]) < (current["at"], current["id"]):
            first[entry["step"]] = entry
            changed = True
    return [first[s] for s in STEPS if s in first], changed


def bucket(seconds: float) -> int:
    """The duration bucket of `seconds` (0 for less than a minute)."""
    minutes = seconds / 60
    return 0 if minutes < 1 else 1 + int(math.log2(minutes) * BUCKETS_PER_DOUBLING)


def bucket_seconds(index: int) -> float:
    """A representative duration of a bucket: its geometric middle."""
    if index == 0:
        return 30.0
    return 60 * 2 ** ((index - 1 + 0.5) / BUCKETS_PER_DOUBLING)


def _months_between(first: str, later: str) -> int:
    return (int(later[:4]) - int(first[:4])) * 12 + int(later[5:7]) - int(first[5:7])


def replay(entries: list[dict[str, Any]]) -> Movements:
    first = {e["step"]: e for e in entries}
    signed = first.get("signed_up")
    if signed is None:
        return {}
    counters: dict[str, Decimal] = {"fun|signed_up": Decimal(1)}
    previous = signed
    for step in STEPS[1:]:
        reached = first.get(step)
        if reached is None or reached["at"] < previous["at"]:
            break
        counters[f"fun|{step}"] = Decimal(1)
        counters[f"funt|{step}|{bucket(reached['at'] - previous['at'])}"] = Decimal(1)
        previous = reached
    booked = first.get("vendor_booked")
    if booked is not None and booked["at"] >= signed["at"]:
        counters[f"cplcoh|{_months_between(signed['day'], booked['day'])}"] = Decimal(1)
    return {signed["day"]: counters}
