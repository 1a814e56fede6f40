"""A straightforward recomputation of the success metrics from raw events, for tests.

Written independently of success_metrics.metrics (no shared code): it walks the unique events
in time order and counts with plain sets and dicts, so the aggregates can be checked against it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def _day(event: dict[str, Any]) -> date:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).date()


def _month(day: date) -> str:
    return f"{day:%Y-%m}"


def recompute(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-month figures from unique events (duplicates by id are dropped first)."""
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        unique.setdefault(event["id"], event)
    ordered = sorted(unique.values(), key=lambda e: (e["occurred_at"], e["id"]))
    months: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "signups": 0,
            "signups_by_type": defaultdict(int),
            "trials": 0,
            "converted": 0,
            "paid_new": 0,
            "active": set(),
            "searched": set(),
            "booked": set(),
            "sessions": defaultdict(int),
            "revenue": defaultdict(Decimal),
            "weddings": defaultdict(set),
            "spend": defaultdict(Decimal),
            "invites_sent": 0,
            "invites_accepted": 0,
            "milestones": 0,
            "feature_users": defaultdict(set),
        }
    )
    signed_up: set[str] = set()
    trial_day: dict[str, date] = {}
    paid_day: dict[str, date] = {}
    milestones: set[tuple[str, str]] = set()
    for event in ordered:
        day = _day(event)
        m = months[_month(day)]
        user = event.get("user_id")
        kind = event["type"]
        props = event.get("properties") or {}
        revenue = event.get("revenue")
        if user:
            m["active"].add(user)
        if kind == "user.signed_up" and user not in signed_up:
            signed_up.add(user)
            m["signups"] += 1
            m["signups_by_type"][event["user_type"]] += 1
        elif kind == "supplier.trial_started" and user not in trial_day:
            trial_day[user] = day
            m["trials"] += 1
        elif kind == "supplier.subscription_started" and user and user not in paid_day:
            paid_day[user] = day
            m["paid_new"] += 1
        elif kind == "session.started":
            m["sessions"][(event.get("context") or {}).get("device", "unknown")] += 1
        elif kind == "payment.succeeded":
            m["revenue"][revenue["currency"]] += Decimal(revenue["amount"])
            if props.get("wedding_id"):
                m["weddings"][revenue["currency"]].add(props["wedding_id"])
        elif kind == "marketing.spend_recorded":
            m["spend"][revenue["currency"]] += Decimal(revenue["amount"])
        elif kind == "couple.vendor_searched" and user:
            m["searched"].add(user)
        elif kind == "couple.vendor_booked" and user:
            m["booked"].add(user)
        elif kind == "referral.invite_sent":
            m["invites_sent"] += 1
        elif kind == "referral.invite_accepted":
            m["invites_accepted"] += 1
        elif kind == "couple.milestone_completed" and user:
            key = (user, props.get("milestone", "unknown"))
            if key not in milestones:
                milestones.add(key)
                m["milestones"] += 1
        elif kind == "feature.used" and user:
            m["feature_users"][props.get("feature", "unknown")].add(user)
    for user, started in trial_day.items():
        if user in paid_day and paid_day[user] >= started:
            months[_month(started)]["converted"] += 1
    return {
        month: {
            "signups": m["signups"],
            "signups_by_type": dict(m["signups_by_type"]),
            "trials": m["trials"],
            "converted": m["converted"],
            "paid_new": m["paid_new"],
            "active_users": len(m["active"]),
            "searched": len(m["searched"]),
            "booked": len(m["booked"]),
            "sessions": dict(m["sessions"]),
            "revenue": {c: str(v.quantize(Decimal("0.01"))) for c, v in m["revenue"].items()},
            "weddings_paid": {c: len(v) for c, v in m["weddings"].items()},
            "spend": {c: str(v.quantize(Decimal("0.01"))) for c, v in m["spend"].items()},
            "invites_sent": m["invites_sent"],
            "invites_accepted": m["invites_accepted"],
            "milestones": m["milestones"],
            "feature_users": {f: len(u) for f, u in m["feature_users"].items()},
        }
        for month, m in sorted(months.items())
    }


def from_api(answer: dict[str, Any]) -> dict[str, Any]:
    """The same figures read from a /v1/metrics answer at month granularity."""
    out = {}
    for period in answer["periods"]:
        m = period["metrics"]
        money = m["money"]
        out[period["period"]] = {
            "signups": m["signups"]["total"],
            "signups_by_type": m["signups"]["by_user_type"],
            "trials": m["trials_started"],
            "converted": int(m["trial_to_paid"]["numerator"]),
            "paid_new": m["new_paying_suppliers"],
            "active_users": m["active_users"],
            "searched": int(m["seasonal_conversion"]["denominator"]),
            "booked": int(m["seasonal_conversion"]["numerator"]),
            "sessions": m["sessions_by_device"],
            "revenue": {c: v["revenue"] for c, v in money.items() if v["revenue"] != "0.00"},
            "weddings_paid": {
                c: v["weddings_paid"] for c, v in money.items() if v["weddings_paid"]
            },
            "spend": {
                c: v["marketing_spend"] for c, v in money.items() if v["marketing_spend"] != "0.00"
            },
            "invites_sent": m["k_factor"]["invites_sent"],
            "invites_accepted": m["k_factor"]["invites_accepted"],
            "milestones": int(m["milestone_completion"]["numerator"]),
            "feature_users": {f: int(v["numerator"]) for f, v in m["feature_adoption"].items()},
        }
    return {k: v for k, v in out.items() if any(v.values())}
