"""What one stored event adds to the aggregates: a pure function of the event document.

Three kinds of contribution, all exactly once:
- event counters (per type, device, country, revenue...), counted once per event id;
- once-ever facts about a user (signed up, created a wedding, completed a milestone, planning a
  wedding), counted by the first event that claims them (a supplier's first trial, conversion
  and first subscription come from its ledger instead: `metrics.subscriptions`);
- first-in-period facts for distinct measures (active users, feature users, couples who searched
  or booked, weddings paid for), one per granularity, counted on the day of the first event of
  that user in that period, so summing the days of a period gives its exact distinct count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from success_metrics.metrics.periods import Granularity, bucket

ONE = Decimal(1)
UNKNOWN = "unknown"
_SAFE = str.maketrans({"|": "/", "#": "/"})


def clean(value: Any, limit: int = 60) -> str:
    """A dimension value safe inside an attribute name or a key."""
    text = str(value).strip().translate(_SAFE)[:limit]
    return text or UNKNOWN


@dataclass(frozen=True)
class Token:
    """A fact counted only by the first event that claims it (`key` is unique per fact)."""

    key: str
    counters: dict[str, Decimal]


@dataclass
class Contribution:
    event_id: str
    day: date
    counters: dict[str, Decimal]
    tokens: list[Token]
    user_id: str | None


def _add(counters: dict[str, Decimal], name: str, amount: Decimal = ONE) -> None:
    counters[name] = counters.get(name, Decimal(0)) + amount


def _distinct(prefix: str, subject: str, day: date, counter: str) -> list[Token]:
    return [
        Token(f"dist|{g.value}|{bucket(day, g)}|{prefix}|{subject}", {f"{counter}|{g.value}": ONE})
        for g in Granularity
    ]


def contribution(doc: dict[str, Any]) -> Contribution:
    """The contribution of one stored event document (see event_store.document)."""
    event_type: str = doc["type"]
    occurred = datetime.fromisoformat(doc["occurred_at"].replace("Z", "+00:00"))
    day = occurred.date()
    user = doc.get("user_id")
    user_type = clean(doc.get("user_type") or UNKNOWN)
    props: dict[str, Any] = doc.get("properties") or {}
    context: dict[str, Any] = doc.get("context") or {}
    revenue = doc.get("revenue")
    amount = Decimal(revenue["amount"]) if revenue else Decimal(0)
    currency = clean(revenue["currency"]) if revenue else ""
    channel = clean(props.get("channel") or UNKNOWN)
    country = clean(context["country"]) if context.get("country") else None

    counters: dict[str, Decimal] = {}
    tokens: list[Token] = []
    _add(counters, f"n|{event_type}")
    _add(counters, f"utype|{user_type}")
    if country:
        _add(counters, f"geo|{country}")
        _add(counters, f"geo|{country}|{clean(context.get('region') or UNKNOWN)}")
    if user:
        tokens += _distinct("active", clean(user, 128), day, "active")

    if event_type == "user.signed_up" and user:
        signup = {"signup": ONE, f"signup|{user_type}": ONE, f"signup|{user_type}|{channel}": ONE}
        if country:
            signup[f"geo_signup|{country}"] = ONE
        tokens.append(Token(f"once|signup|{clean(user, 128)}", signup))
    elif event_type == "supplier.subscription_started":
        # First trial, conversion and first subscription are the supplier ledger's
        # (metrics.subscriptions): exact whatever order a supplier's events arrive in.
        _add(counters, "sub_start")
        if revenue:
            _add(counters, f"subrev|{currency}", amount)
    elif event_type == "supplier.subscription_renewed" and revenue:
        _add(counters, f"subrev|{currency}", amount)
    elif event_type == "supplier.subscription_cancelled":
        _add(counters, "cancel")
    elif event_type == "marketing.spend_recorded" and revenue:
        _add(counters, f"spend|{channel}|{currency}", amount)
        _add(counters, f"spend|*|{currency}", amount)
    elif event_type == "payment.succeeded" and revenue:
        _add(counters, f"rev|{currency}", amount)
        if country:
            _add(counters, f"geo_rev|{country}|{currency}", amount)
        if props.get("wedding_id"):
            wedding = clean(props["wedding_id"], 128)
            tokens += [
                Token(
                    f"dist|{g.value}|{bucket(day, g)}|wedding|{currency}|{wedding}",
                    {f"weddings_paid|{currency}|{g.value}": ONE},
                )
                for g in Granularity
            ]
    elif event_type == "couple.wedding_created" and user:
        tokens.append(Token(f"once|wedding|{clean(user, 128)}", {"couples_with_wedding": ONE}))
        tokens.append(_planning(user))
    elif event_type == "couple.milestone_completed" and user:
        milestone = clean(props.get("milestone") or UNKNOWN)
        tokens.append(
            Token(
                f"once|milestone|{clean(user, 128)}|{milestone}",
                {"milestones": ONE, f"milestones|{milestone}": ONE},
            )
        )
        tokens.append(_planning(user))
    elif event_type == "couple.vendor_searched" and user:
        tokens += _distinct("searched", clean(user, 128), day, "searched")
    elif event_type == "couple.vendor_booked" and user:
        tokens += _distinct("booked", clean(user, 128), day, "booked")
    elif event_type == "session.started":
        _add(counters, f"dev|{clean(context.get('device') or UNKNOWN)}")
    elif event_type == "feature.used" and user:
        feature = clean(props.get("feature") or UNKNOWN)
        _add(counters, f"feature_events|{feature}")
        tokens += _distinct(f"feature:{feature}", clean(user, 128), day, f"feature_users|{feature}")
    return Contribution(doc["id"], day, counters, tokens, user)


def _planning(user: str) -> Token:
    """A couple planning a wedding: one that created it or completed any milestone of it,
    counted once by whichever of those events comes first (the population of milestone
    completion: every couple who completed a milestone is in it, whatever the arrival order)."""
    return Token(f"once|planning|{clean(user, 128)}", {"couples_planning": ONE})
