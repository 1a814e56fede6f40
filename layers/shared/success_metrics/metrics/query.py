"""GET /v1/metrics: reads the per-day counter items of a range and applies the formulas.

Periods are whole buckets of the granularity (weeks start on Monday), so distinct measures are
exact; the effective range is in the answer. Counters before the range are read too, for the
measures that need the state at a period's start (paying suppliers, couples with a wedding).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from success_metrics.metrics import formulas
from success_metrics.metrics.periods import Granularity, bounds, buckets, days, running_totals
from success_metrics.stores.metrics import read_counters

MAX_RANGE_DAYS = 3 * 366
NON_ADDITIVE = ("active_users", "feature_adoption", "seasonal_conversion")
Breakdown = Literal["channel", "user_type", "country", "region", "device", "feature", "milestone"]


class RangeQuery(BaseModel):
    """`from` and `to`, days, at most 3 years apart."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date = Field(alias="from")
    end: date = Field(alias="to")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.start > self.end:
            raise ValueError("'from' must not be after 'to'")
        if (self.end - self.start).days + 1 > MAX_RANGE_DAYS:
            raise ValueError("the range is at most 3 years")
        return self


class MetricsQuery(RangeQuery):
    granularity: Granularity = Granularity.MONTH
    breakdown: Breakdown | None = None


def _sum(per_day: dict[date, dict[str, Decimal]], first: date, last: date) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for day in days(first, last):
        for name, value in per_day.get(day, {}).items():
            total[name] = total.get(name, Decimal(0)) + value
    return total


STATE = ("sub_start", "cancel", "couples_with_wedding", "couples_planning", "milestones")
# Each milestone's completions; MRR movements and paying-supplier counts per currency.
STATE_PREFIXES = ("milestones|", "mrr_", "cust_")
ONE_DAY = timedelta(days=1)


def _is_state(name: str) -> bool:
    return name in STATE or name.startswith(STATE_PREFIXES)


def _state_name(name: str) -> str | None:
    return name if _is_state(name) else None


def history(
    per_day: dict[date, dict[str, Decimal]], starts: Iterable[date]
) -> dict[date, dict[str, Decimal]]:
    """The state counters' running totals on the eve of each of `starts` (paying suppliers,
    couples with a wedding, milestones so far, MRR per currency)."""
    return running_totals(per_day, (start - ONE_DAY for start in starts), _state_name)


def _state_before(past: dict[date, dict[str, Decimal]], first: date) -> dict[str, Decimal]:
    return {**dict.fromkeys(STATE, Decimal(0)), **past[first - ONE_DAY]}


def build_period(
    per_day: dict[date, dict[str, Decimal]],
    key: str,
    start: date,
    end: date,
    granularity: Granularity,
    gross_margin: Decimal,
    breakdown: str | None = None,
    past: dict[date, dict[str, Decimal]] | None = None,
) -> formulas.PeriodInput:
    """The formulas' input for one period: its sums, and the state at its start and end."""
    before = _state_before(history(per_day, [start]) if past is None else past, start)
    counters = _sum(per_day, start, end)
    return formulas.PeriodInput(
        key=key,
        first=start,
        last=end,
        counters=counters,
        paying_at_start=before["sub_start"] - before["cancel"],
        couples_with_wedding_at_end=before["couples_with_wedding"]
        + counters.get("couples_with_wedding", Decimal(0)),
        state_at_end={
            name: before.get(name, Decimal(0)) + counters.get(name, Decimal(0))
            for name in {*before, *(n for n in counters if _is_state(n))}
        },
        granularity=granularity,
        gross_margin=gross_margin,
        breakdown=breakdown,
    )


def compute_metrics(
    org_id: str,
    query: MetricsQuery,
    per_day: dict[date, dict[str, Decimal]],
    gross_margin: Decimal = Decimal(1),
) -> dict[str, Any]:
    g = query.granularity
    periods = list(buckets(query.start, query.end, g))
    first, last = periods[0][1], periods[-1][2]
    past = history(per_day, [first, *(start for _, start, _ in periods)])

    def period_input(
        key: str, start: date, end: date, granularity: Granularity
    ) -> formulas.PeriodInput:
        return build_period(
            per_day, key, start, end, granularity, gross_margin, query.breakdown, past
        )

    out_periods = [
        {
            "period": key,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "metrics": formulas.compute(period_input(key, start, end, g)),
        }
        for key, start, end in periods
    ]
    totals = formulas.compute(period_input("total", first, last, g))
    if len(periods) > 1:
        for name in NON_ADDITIVE:
            totals.pop(name, None)
        for money in totals["money"].values():
            money.pop("revenue_per_wedding", None)
            money.pop("weddings_paid", None)
    return {
        "org_id": org_id,
        "requested": {"from": query.start.isoformat(), "to": query.end.isoformat()},
        "from": first.isoformat(),
        "to": last.isoformat(),
        "granularity": g.value,
        "breakdown": query.breakdown,
        "periods": out_periods,
        "totals": totals,
        "seasonal": _seasonal(per_day, first, last),
        "notes": {
            "periods": "whole periods of the granularity covering the requested range "
            "(weeks start on Monday; seasons: peak May-October, off-peak November-April)",
            "money": "every money figure is per currency; currencies are never converted",
            "totals": "distinct-user measures (active users, feature adoption, seasonal "
            "conversion, revenue per wedding) are exact per period and not additive, so totals "
            "over several periods leave them out",
            "undefined": "a ratio with a zero denominator is null, with the reason",
        },
        "definitions": formulas.DEFINITIONS,
    }


def _seasonal(per_day: dict[date, dict[str, Decimal]], first: date, last: date) -> dict[str, Any]:
    """Seasonal conversion: whole seasons and whole months overlapping the range."""
    peak: dict[str, Decimal] = {"booked": Decimal(0), "searched": Decimal(0)}
    off: dict[str, Decimal] = {"booked": Decimal(0), "searched": Decimal(0)}
    seasons: dict[str, Any] = {}
    for key, start, end in buckets(first, last, Granularity.SEASON):
        c = _sum(per_day, start, end)
        booked, searched = c.get("booked|season", Decimal(0)), c.get("searched|season", Decimal(0))
        target = peak if key.endswith("-peak") else off
        target["booked"] += booked
        target["searched"] += searched
        seasons[key] = formulas.ratio(booked, searched, "no couple searched in this season")
    months = {
        key: formulas.ratio(
            (c := _sum(per_day, start, end)).get("booked|month", Decimal(0)),
            c.get("searched|month", Decimal(0)),
            "no couple searched in this month",
        )
        for key, start, end in buckets(first, last, Granularity.MONTH)
    }
    return {
        "peak": formulas.ratio(
            peak["booked"], peak["searched"], "no couple searched in peak season"
        ),
        "off_peak": formulas.ratio(off["booked"], off["searched"], "no couple searched off-peak"),
        "by_season": seasons,
        "by_month": months,
    }


def metrics(
    org_id: str, query: MetricsQuery, gross_margin: Decimal, now: float | None = None
) -> dict[str, Any]:
    moment = time.time() if now is None else now
    last = list(buckets(query.start, query.end, query.granularity))[-1][2]
    season_end = bounds(last, Granularity.SEASON)[1]
    per_day = read_counters(org_id, max(last, season_end), moment)
    return compute_metrics(org_id, query, per_day, gross_margin)
