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
            "converted_30d": 0,
            "converted_90d": 0,
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
            for days in (30, 90):
                if (paid_day[user] - started).days <= days:
                    months[_month(started)][f"converted_{days}d"] += 1
    return {
        month: {
            "signups": m["signups"],
            "signups_by_type": dict(m["signups_by_type"]),
            "trials": m["trials"],
            "converted": m["converted"],
            "converted_30d": m["converted_30d"],
            "converted_90d": m["converted_90d"],
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
            "converted_30d": int(m["trial_to_paid_30d"]["numerator"]),
            "converted_90d": int(m["trial_to_paid_90d"]["numerator"]),
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
            "milestones": m["milestone_completion"]["completed_in_period"],
            "feature_users": {f: int(v["numerator"]) for f, v in m["feature_adoption"].items()},
        }
    return {k: v for k, v in out.items() if any(v.values())}


# ------------------------------------------------------------------ subscription revenue

_SUB_TYPES = {
    "supplier.subscription_started",
    "supplier.subscription_changed",
    "supplier.subscription_renewed",
    "supplier.subscription_cancelled",
}


def _instant(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def recompute_mrr(events: list[dict[str, Any]], months: list[str]) -> dict[str, Any]:
    """Per month and currency: MRR at the start and end, each movement and the supplier
    counts, from unique events, walking each supplier's subscription events in the order they
    occurred (written apart from success_metrics.metrics.subscriptions)."""
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        unique.setdefault(event["id"], event)
    histories: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in unique.values():
        if event["type"] in _SUB_TYPES and event.get("user_id"):
            histories[event["user_id"]].append(event)
    # (day, currency, movement, amount) and (day, currency, customer change)
    moves: list[tuple[date, str, str, Decimal]] = []
    people: list[tuple[date, str, str]] = []
    for history in histories.values():
        history.sort(key=lambda e: (_instant(e), e["id"]))
        paying: tuple[str, Decimal] | None = None  # (currency, MRR)
        churned_once = False
        for event in history:
            day = _day(event)
            revenue = event.get("revenue")
            if event["type"] == "supplier.subscription_renewed" and not revenue:
                continue
            target = None
            if event["type"] != "supplier.subscription_cancelled" and revenue:
                per = 12 if (event.get("properties") or {}).get("interval") == "year" else 1
                amount = (Decimal(revenue["amount"]) / per).quantize(Decimal("0.01"))
                if amount > 0:
                    target = (revenue["currency"], amount)
            if paying is not None and (target is None or target[0] != paying[0]):
                moves.append((day, paying[0], "churn", -paying[1]))
                people.append((day, paying[0], "churned"))
                paying, churned_once = None, True
            if target is None:
                continue
            if paying is None:
                moves.append((day, target[0], "reactivation" if churned_once else "new", target[1]))
                people.append((day, target[0], "reactivated" if churned_once else "new"))
            elif target[1] != paying[1]:
                kind = "expansion" if target[1] > paying[1] else "contraction"
                moves.append((day, target[0], kind, target[1] - paying[1]))
            paying = target
    out: dict[str, Any] = {}
    for month in months:
        first = date.fromisoformat(f"{month}-01")
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        per_currency: dict[str, Any] = {}
        for currency in sorted({c for _, c, _, _ in moves}):
            mine = [(d, k, a) for d, c, k, a in moves if c == currency]
            end = sum((a for d, _, a in mine if d < after), Decimal(0))
            start = sum((a for d, _, a in mine if d < first), Decimal(0))
            movements = {
                k: sum((a for d, kk, a in mine if kk == k and first <= d < after), Decimal(0))
                for k in ("new", "expansion", "contraction", "churn", "reactivation")
            }
            counts = defaultdict(int)
            paying_end = 0
            for d, c, change in people:
                if c != currency:
                    continue
                if first <= d < after:
                    counts[change] += 1
                if d < after:
                    paying_end += -1 if change == "churned" else 1
            figures = {
                "mrr_start": f"{start:.2f}",
                "mrr_end": f"{end:.2f}",
                **{k: f"{v:.2f}" for k, v in movements.items()},
                "paying_end": paying_end,
                "churned": counts["churned"],
            }
            if start or end or any(movements.values()):
                per_currency[currency] = figures
        if per_currency:
            out[month] = per_currency
    return out


def mrr_from_api(answer: dict[str, Any]) -> dict[str, Any]:
    """The same figures read from a /v1/metrics answer at month granularity."""
    out: dict[str, Any] = {}
    for period in answer["periods"]:
        per_currency = {}
        for currency, money in period["metrics"]["money"].items():
            moves = money["mrr_movements"]
            figures = {
                "mrr_start": money["mrr_start"],
                "mrr_end": money["mrr_end"],
                **{
                    k: moves[k]
                    for k in ("new", "expansion", "contraction", "churn", "reactivation")
                },
                "paying_end": money["paying_suppliers_end"],
                "churned": money["customers"]["churned"],
            }
            if any(
                v not in ("0.00", 0)
                for k, v in figures.items()
                if k.startswith("mrr") or k in moves
            ):
                per_currency[currency] = figures
        if per_currency:
            out[period["period"]] = per_currency
    return out


_FUNNEL = ("couple.wedding_created", "couple.vendor_searched", "couple.vendor_booked")


def recompute_funnel(events: list[dict[str, Any]], first: str, last: str) -> list[int]:
    """Couples who signed up between `first` and `last` (days), and how many of them then
    reached each later step in order (first times), from unique events."""
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        unique.setdefault(event["id"], event)
    earliest: dict[str, dict[str, datetime]] = defaultdict(dict)
    for event in unique.values():
        user = event.get("user_id")
        kind = event["type"]
        if not user:
            continue
        if kind == "user.signed_up" and event.get("user_type") == "couple":
            kind = "signed_up"
        elif kind not in _FUNNEL:
            continue
        when = _instant(event)
        if kind not in earliest[user] or when < earliest[user][kind]:
            earliest[user][kind] = when
    counts = [0, 0, 0, 0]
    for steps in earliest.values():
        signed = steps.get("signed_up")
        if signed is None or not first <= signed.date().isoformat() <= last:
            continue
        counts[0] += 1
        previous = signed
        for index, kind in enumerate(_FUNNEL, 1):
            reached = steps.get(kind)
            if reached is None or reached < previous:
                break
            counts[index] += 1
            previous = reached
    return counts
