"""The success-metric formulas (SPEC §6), on counters summed per period. Pure: no AWS.

Money is Decimal and never mixed across currencies: every money figure is per currency.
A ratio whose denominator is zero is `null` with the reason, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
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
    "k_factor": "viral coefficient: invites sent per new user x invite conversion rate (invites "
    "accepted / invites sent), which is invites accepted / new users; new users = signups in "
    "the period; both factors are shown",
    "seasonal_conversion": "couples who booked a vendor / couples who searched for a vendor, "
    "distinct couples within each period; peak season is May-October",
    "revenue": "sum of payment.succeeded revenue, per currency",
    "revenue_per_wedding": "payment revenue / distinct weddings (properties.wedding_id) paid "
    "for in the period, per currency",
    "milestone_completion": "per milestone, the share of couples planning a wedding (they created "
    "one or completed any milestone) by the end of the period who had completed it, between 0 "
    "and 1; milestones per couple is the average count of milestones those couples completed "
    "(a count, not a rate); completed_in_period counts each couple's milestone once, when first "
    "completed",
    "trial_to_paid_30d": "of the suppliers whose first trial started in the period, the share "
    "whose first subscription started within 30 days of it (trial_to_paid_90d: 90 days)",
    "mrr": "monthly recurring revenue per currency: each paying supplier's subscription amount "
    "per billing interval, a yearly one divided by 12, to the cent; mrr_start and mrr_end are "
    "at the period's start and end, and mrr_start + the movements = mrr_end",
    "mrr_movements": "new (a supplier's first paid subscription), expansion (an upgrade), "
    "contraction (a downgrade, negative), churn (a cancellation or a move to a free plan, "
    "negative), reactivation (a supplier who had churned pays again), in the order the "
    "subscription events occurred, whatever the order they arrived in (ChartMogul's MRR "
    "movements)",
    "arpa": "MRR at the period's end / paying suppliers at its end, per currency",
    "customer_churn_rate": "suppliers who stopped paying in the period / paying suppliers at "
    "its start, per currency",
    "gross_mrr_churn": "(churn + contraction MRR) / MRR at the period's start",
    "net_mrr_churn": "(churn + contraction - expansion - reactivation MRR) / MRR at the "
    "period's start (negative when expansion outgrows the losses)",
    "net_revenue_retention": "(MRR at the start + expansion - contraction - churn) / MRR at "
    "the start; reactivations are not counted (those suppliers were not paying at the start)",
    "quick_ratio": "(new + expansion + reactivation MRR) / (churn + contraction MRR)",
    "ltv": "ARPA x gross margin / monthly customer churn rate (the period's rate / its months); "
    "none when no supplier churned in the period (the lifetime is unbounded, not infinite)",
    "cac_payback_months": "CAC / (ARPA x gross margin): months of gross profit that repay the "
    "cost of acquiring a paying supplier",
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
        if head in ("rev", "subrev") or head.startswith(("mrr_", "cust_")):
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
    # Running totals at the period's end of the counters that describe a state.
    state_at_end: dict[str, Decimal] = field(default_factory=dict)
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
        **{
            f"trial_to_paid_{days}d": ratio(
                get(f"trial_converted_{days}d"), get("trial"), "no trials started in the period"
            )
            for days in (30, 90)
        },
        "new_paying_suppliers": _int(get("paid_new")),
        "active_users": _int(active),
        "k_factor": _k_factor(signups, sent, accepted),
        "seasonal_conversion": ratio(
            get(f"booked|{g}"),
            get(f"searched|{g}"),
            "no couple searched for a vendor in the period",
        ),
        "milestone_completion": _milestones(period),
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
        "money": {
            cur: _money_block(period, cur) for cur in currencies({**period.state_at_end, **c})
        },
    }
    if period.breakdown:
        result["breakdown"] = breakdown(c, period.breakdown, g)
    return result


def _k_factor(new_users: Decimal, sent: Decimal, accepted: Decimal) -> dict[str, Any]:
    """K = (invites sent / new users) x (invites accepted / invites sent) = accepted / new
    users. An invite accepted in the period may have been sent before it, so the conversion
    factor can exceed 1 over a short period; K stays accepted / new users."""
    base = {
        "invites_sent": _int(sent),
        "invites_accepted": _int(accepted),
        "new_users": _int(new_users),
        "invites_per_new_user": ratio(sent, new_users, "no new users in the period")["value"],
        "invite_conversion": ratio(accepted, sent, "no invites sent in the period")["value"],
    }
    if new_users == 0:
        return {"value": None, **base, "reason": "no new users in the period"}
    return {"value": round(float(accepted / new_users), 4), **base}


def _milestones(period: PeriodInput) -> dict[str, Any]:
    state = period.state_at_end
    planning = state.get("couples_planning", ZERO)
    reason = "no couple was planning a wedding by the end of the period"
    per_couple = ratio(state.get("milestones", ZERO), planning, reason)
    return {
        "couples_planning": _int(planning),
        "milestones_per_couple": per_couple["value"],
        "completed_in_period": _int(period.counters.get("milestones", ZERO)),
        "by_milestone": {
            name: ratio(done, planning, reason)
            for name, done in sorted(_suffixes(state, "milestones|").items())
        },
    }


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
        # No spend recorded in this currency: its CAC is unknown, not free.
        "cac": _money_ratio(spend, paid_new, "no new paying suppliers in the period")
        if spend
        else {"value": None, "reason": "no marketing spend in this currency in the period"},
        "cac_by_channel": _cac_by_channel(c, currency),
        "weddings_paid": _int(get(f"weddings_paid|{currency}|{g}")),
        "revenue_per_wedding": _money_ratio(
            get(f"rev|{currency}"),
            get(f"weddings_paid|{currency}|{g}"),
            "no wedding was paid for in this currency in the period",
        ),
        "clv": _clv(period, currency),
    }
    block.update(subscription_figures(period, currency, block["cac"]))
    return block


MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation")


def subscription_figures(period: PeriodInput, currency: str, cac: dict[str, Any]) -> dict[str, Any]:
    """MRR at the period's start and end, its movements and what is derived from them, in one
    currency (docs/metrics.md gives each definition and its source)."""
    c, end_state = period.counters, period.state_at_end

    def moved(name: str) -> Decimal:
        return c.get(f"mrr_{name}|{currency}", ZERO)

    movements = {name: moved(name) for name in MOVEMENTS}
    mrr_end = sum((end_state.get(f"mrr_{n}|{currency}", ZERO) for n in MOVEMENTS), ZERO)
    mrr_start = mrr_end - sum(movements.values(), ZERO)

    def customers(name: str, state: Mapping[str, Decimal]) -> Decimal:
        return state.get(f"cust_{name}|{currency}", ZERO)

    paying_end = (
        customers("new", end_state)
        + customers("reactivated", end_state)
        - customers("churned", end_state)
    )
    new_customers, reactivated, churned = (
        customers(n, c) for n in ("new", "reactivated", "churned")
    )
    paying_start = paying_end - new_customers - reactivated + churned
    lost = -(movements["churn"] + movements["contraction"])  # a positive amount
    gained = movements["expansion"] + movements["reactivation"]
    no_start = "no MRR at the start of the period"
    arpa = mrr_end / paying_end if paying_end else None
    churn_rate = ratio(churned, paying_start, "no paying suppliers at the start of the period")
    margin = period.gross_margin
    months = _calendar_months(period.first, period.last)
    figures: dict[str, Any] = {
        "mrr_start": _money(mrr_start),
        "mrr_end": _money(mrr_end),
        "mrr_movements": {name: _money(v) for name, v in movements.items()}
        | {"net": _money(mrr_end - mrr_start)},
        "paying_suppliers_start": _int(paying_start),
        "paying_suppliers_end": _int(paying_end),
        "customers": {
            "new": _int(new_customers),
            "reactivated": _int(reactivated),
            "churned": _int(churned),
        },
        "arpa": {"value": _money(arpa)}
        if arpa is not None
        else {
            "value": None,
            "reason": "no paying suppliers at the end of the period",
        },
        "customer_churn_rate": churn_rate,
        "gross_mrr_churn": ratio(lost, mrr_start, no_start),
        "net_mrr_churn": ratio(lost - gained, mrr_start, no_start),
        "net_revenue_retention": ratio(
            mrr_start + movements["expansion"] - lost, mrr_start, no_start
        ),
        "quick_ratio": ratio(
            movements["new"] + gained, lost, "no MRR was lost to churn or contraction"
        ),
        "ltv": _ltv(arpa, margin, churned, paying_start, months),
        "cac_payback_months": _payback(cac, arpa, margin),
    }
    return figures


def _calendar_months(first: date, last: date) -> Decimal:
    """A period's length in months for a monthly rate: whole calendar months count as they
    are (June is one month), any other period in average months."""
    whole = first.day == 1 and (last + timedelta(days=1)).day == 1
    if whole:
        return Decimal((last.year - first.year) * 12 + last.month - first.month + 1)
    return Decimal(str(months_in(first, last)))


def _ltv(
    arpa: Decimal | None, margin: Decimal, churned: Decimal, paying_start: Decimal, months: Decimal
) -> dict[str, Any]:
    """ARPA x gross margin / monthly customer churn rate. With no churn in the period the
    lifetime is unbounded: no value, and the reason says so (never an infinite or made-up one)."""
    if arpa is None:
        return {"value": None, "reason": "no paying suppliers at the end of the period"}
    if paying_start == 0:
        return {"value": None, "reason": "no paying suppliers at the start of the period"}
    if churned == 0:
        return {"value": None, "reason": "customer churn is 0 in the period: lifetime unbounded"}
    monthly_churn = churned / paying_start / months
    return {
        "value": _money(arpa * margin / monthly_churn),
        "monthly_customer_churn": round(float(monthly_churn), 4),
    }


def _payback(cac: dict[str, Any], arpa: Decimal | None, margin: Decimal) -> dict[str, Any]:
    """Months of gross profit from one supplier that repay its acquisition: CAC / (ARPA x
    gross margin)."""
    if cac.get("value") is None:
        return {"value": None, "reason": cac.get("reason", "no CAC in the period")}
    if not arpa:
        return {"value": None, "reason": "no paying suppliers at the end of the period"}
    return {"value": round(float(Decimal(cac["value"]) / (arpa * margin)), 2)}


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
