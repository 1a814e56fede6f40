"""The success-metric formulas (SPEC §6), on counters summed per period. Pure: no AWS.

Money is Decimal and never mixed across currencies: every money figure is per currency.
A ratio whose denominator is zero is `null` with the reason, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from success_metrics.metrics.periods import Granularity, months_in

Counters = Mapping[str, Decimal]
ZERO = Decimal(0)
CENT = Decimal("0.01")

DEFINITIONS: dict[str, str] = {
    "signups": "user.signed_up events, one per user, by user type and acquisition channel",
    "trials_started": "suppliers whose first supplier.trial_started falls in the period",
    "trial_to_paid": "of the suppliers whose first trial started in the period (the cohort), the "
    "share who have started a subscription since, at any time after the trial",
    "new_paying_suppliers": "suppliers whose first supplier.subscription_started falls in the "
    "period, by the channel of their signup",
    "marketing_spend": "sum of marketing.spend_recorded revenue, per currency and channel",
    "cac": "marketing spend / new paying suppliers in the period, per currency, in total and per "
    "channel (spend and suppliers tagged with the same channel)",
    "clv": "average monthly subscription revenue per paying supplier x gross margin / monthly "
    "churn rate; paying suppliers = subscriptions started - cancelled, all time, at the period "
    "start and end (average of both for revenue); monthly churn = cancellations in the period / "
    "paying suppliers at its start / months in the period; per currency",
    "k_factor": "invites sent per new user x invite acceptance rate, where the acceptance rate is "
    "invites accepted / new users (SPEC §6); new users = signups in the period",
    "seasonal_conversion": "couples who booked a vendor / couples who searched for a vendor, "
    "distinct couples within each period; peak season is May-October",
    "revenue": "sum of payment.succeeded revenue, per currency",
    "revenue_per_wedding": "payment revenue / distinct weddings (properties.wedding_id) paid "
    "for in the period, per currency",
    "milestone_completion": "milestones completed in the period (each couple's milestone counted "
    "once) / couples who had created a wedding by the end of the period",
    "active_users": "distinct users (user_id) with any event in the period",
    "feature_adoption": "distinct users of a feature (feature.used) / distinct active users, "
    "per period",
    "device_share": "share of session.started events per context.device",
    "regions": "events, signups and payment revenue by context.country and context.region",
}


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def ratio(numerator: Decimal | int, denominator: Decimal | int, reason: str) -> dict[str, Any]:
    num, den = Decimal(numerator), Decimal(denominator)
    if den == 0:
        return {"value": None, "numerator": float(num), "denominator": 0, "reason": reason}
    return {"value": round(float(num / den), 4), "numerator": float(num), "denominator": float(den)}


def _int(value: Decimal) -> int:
    return int(value)


def _suffixes(counters: Counters, prefix: str) -> dict[str, Decimal]:
    """{rest: value} for every counter named prefix + rest."""
    return {name[len(prefix) :]: v for name, v in counters.items() if name.startswith(prefix)}


def currencies(counters: Counters) -> list[str]:
    found = set()
    for name in counters:
        head, _, rest = name.partition("|")
        if head in ("rev", "subrev"):
            found.add(rest)
        elif head == "spend":
            found.add(rest.rsplit("|", 1)[1])
    return sorted(found)


@dataclass
class PeriodInput:
    key: str
    first: date
    last: date
    counters: dict[str, Decimal]
    paying_at_start: Decimal
    couples_with_wedding_at_end: Decimal
    granularity: Granularity
    gross_margin: Decimal = Decimal(1)
    breakdown: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def compute(period: PeriodInput) -> dict[str, Any]:
    c = period.counters
    g = period.granularity.value

    def get(name: str) -> Decimal:
        return c.get(name, ZERO)

    signups = get("signup")
    sent, accepted = get("n|referral.invite_sent"), get("n|referral.invite_accepted")
    sessions = _suffixes(c, "dev|")
    total_sessions = sum(sessions.values(), ZERO)
    active = get(f"active|{g}")
    result: dict[str, Any] = {
        "signups": {
            "total": _int(signups),
            "by_user_type": {
                k: _int(v) for k, v in _suffixes(c, "signup|").items() if "|" not in k
            },
        },
        "trials_started": _int(get("trial")),
        "trial_to_paid": ratio(
            get("trial_converted"), get("trial"), "no trials started in the period"
        ),
        "new_paying_suppliers": _int(get("paid_new")),
        "active_users": _int(active),
        "k_factor": _k_factor(signups, sent, accepted),
        "seasonal_conversion": ratio(
            get(f"booked|{g}"),
            get(f"searched|{g}"),
            "no couple searched for a vendor in the period",
        ),
        "milestone_completion": ratio(
            get("milestones"),
            period.couples_with_wedding_at_end,
            "no couple had created a wedding by the end of the period",
        ),
        "feature_adoption": {
            feature.rsplit("|", 1)[0]: ratio(v, active, "no active users in the period")
            for feature, v in sorted(_suffixes(c, "feature_users|").items())
            if feature.endswith("|" + g)
        },
        "device_share": {
            device: ratio(v, total_sessions, "no sessions in the period")["value"]
            for device, v in sorted(sessions.items())
        },
        "sessions": _int(total_sessions),
        "sessions_by_device": {device: _int(v) for device, v in sorted(sessions.items())},
        "money": {cur: _money_block(period, cur) for cur in currencies(c)},
    }
    if period.breakdown:
        result["breakdown"] = breakdown(c, period.breakdown, g)
    return result


def _k_factor(new_users: Decimal, sent: Decimal, accepted: Decimal) -> dict[str, Any]:
    base = {
        "invites_sent": _int(sent),
        "invites_accepted": _int(accepted),
        "new_users": _int(new_users),
    }
    if new_users == 0:
        return {"value": None, **base, "reason": "no new users in the period"}
    value = (sent / new_users) * (accepted / new_users)
    return {"value": round(float(value), 4), **base}


def _money_block(period: PeriodInput, currency: str) -> dict[str, Any]:
    c = period.counters

    def get(name: str) -> Decimal:
        return c.get(name, ZERO)

    g = period.granularity.value
    spend = get(f"spend|*|{currency}")
    paid_new = get("paid_new")
    block: dict[str, Any] = {
        "revenue": _money(get(f"rev|{currency}")),
        "subscription_revenue": _money(get(f"subrev|{currency}")),
        "marketing_spend": _money(spend),
        "cac": _money_ratio(spend, paid_new, "no new paying suppliers in the period"),
        "cac_by_channel": _cac_by_channel(c, currency),
        "weddings_paid": _int(get(f"weddings_paid|{currency}|{g}")),
        "revenue_per_wedding": _money_ratio(
            get(f"rev|{currency}"),
            get(f"weddings_paid|{currency}|{g}"),
            "no wedding was paid for in this currency in the period",
        ),
        "clv": _clv(period, currency),
    }
    return block


def _cac_by_channel(c: Counters, currency: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, spend in _suffixes(c, "spend|").items():
        channel, _, spent_in = key.rpartition("|")
        if spent_in == currency and channel != "*":
            found[channel] = _money_ratio(
                spend,
                c.get(f"paid_new|{channel}", ZERO),
                "no new paying suppliers from this channel",
            )
    return dict(sorted(found.items()))


def _money_ratio(numerator: Decimal, denominator: Decimal, reason: str) -> dict[str, Any]:
    if denominator == 0:
        return {"value": None, "reason": reason}
    return {"value": _money(numerator / denominator)}


def _clv(period: PeriodInput, currency: str) -> dict[str, Any]:
    c = period.counters
    start = period.paying_at_start
    end = start + c.get("sub_start", ZERO) - c.get("cancel", ZERO)
    average = (start + end) / 2
    months = Decimal(str(months_in(period.first, period.last)))
    cancellations = c.get("cancel", ZERO)
    facts: dict[str, Any] = {
        "paying_at_start": _int(start),
        "paying_at_end": _int(end),
        "cancellations": _int(cancellations),
        "gross_margin": str(period.gross_margin),
    }
    if average <= 0:
        return {"value": None, **facts, "reason": "no paying suppliers in the period"}
    arpu = c.get(f"subrev|{currency}", ZERO) / average / months
    facts["arpu_monthly"] = _money(arpu)
    if start <= 0:
        return {"value": None, **facts, "reason": "no paying suppliers at the period start"}
    churn = cancellations / start / months
    facts["churn_monthly"] = round(float(churn), 4)
    if churn == 0:
        return {"value": None, **facts, "reason": "no cancellations in the period (churn is 0)"}
    return {"value": _money(arpu * period.gross_margin / churn), **facts}


BREAKDOWNS = ("channel", "user_type", "country", "region", "device", "feature", "milestone")


def breakdown(c: Counters, dimension: str, g: str) -> dict[str, Any]:
    if dimension == "channel":
        by_channel: dict[str, dict[str, int]] = {}
        for key, v in _suffixes(c, "signup|").items():
            if key.count("|") == 1:
                user_type, channel = key.split("|")
                by_channel.setdefault(channel, {})[user_type] = _int(v)
        return {
            ch: {"signups": types, "new_paying_suppliers": _int(c.get(f"paid_new|{ch}", ZERO))}
            for ch, types in sorted(by_channel.items())
        }
    if dimension == "user_type":
        return {k: {"events": _int(v)} for k, v in sorted(_suffixes(c, "utype|").items())}
    if dimension in ("country", "region"):
        countries: dict[str, Any] = {}
        for key, v in sorted(_suffixes(c, "geo|").items()):
            country, _, region = key.partition("|")
            entry = countries.setdefault(
                country, {"events": 0, "signups": 0, "revenue": {}, "regions": {}}
            )
            if region:
                entry["regions"][region] = _int(v)
            else:
                entry["events"] = _int(v)
        for key, v in _suffixes(c, "geo_signup|").items():
            countries.setdefault(key, {"events": 0, "signups": 0, "revenue": {}, "regions": {}})[
                "signups"
            ] = _int(v)
        for key, v in _suffixes(c, "geo_rev|").items():
            country, currency = key.split("|")
            countries.setdefault(
                country, {"events": 0, "signups": 0, "revenue": {}, "regions": {}}
            )["revenue"][currency] = _money(v)
        return countries
    if dimension == "device":
        return {k: {"sessions": _int(v)} for k, v in sorted(_suffixes(c, "dev|").items())}
    if dimension == "feature":
        return {
            k: {"events": _int(v), "users": _int(c.get(f"feature_users|{k}|{g}", ZERO))}
            for k, v in sorted(_suffixes(c, "feature_events|").items())
        }
    if dimension == "milestone":
        return {k: {"completed": _int(v)} for k, v in sorted(_suffixes(c, "milestones|").items())}
    raise ValueError(f"unknown breakdown {dimension!r}")
