"""GET /v1/metrics/cohorts and GET /v1/metrics/funnel: read from the same per-day counters as
/v1/metrics (the counters `metrics.subscriptions` and `metrics.funnel` maintain at ingest).

- Supplier retention grid, per currency: cohorts by the month of the first paid subscription;
  for each month since, the share of the cohort still paying (logo retention) and the cohort's
  MRR as a share of its first MRR (MRR retention; above 1 when it expanded).
- Couples: cohorts by signup month; for each month since, the share of the cohort that had
  booked a vendor by then.
- Funnel: couples who signed up in the range, how many reached each later step in order, the
  conversion of each step from the one before, and the median time between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from success_metrics.metrics import formulas, funnel, query
from success_metrics.metrics.periods import Granularity, buckets, running_totals
from success_metrics.stores.metrics import read_counters

Days = dict[date, dict[str, Decimal]]
RangeQuery = query.RangeQuery


def _month_key(day: date) -> str:
    return f"{day:%Y-%m}"


def _month_ends(first: date, last: date) -> list[tuple[str, date, date]]:
    return list(buckets(first, last, Granularity.MONTH))


def _totals(per_day: Days, prefix: str, until: date | None = None) -> dict[str, Decimal]:
    """{rest: sum} of every counter named prefix + rest, over the days up to `until`."""
    found: dict[str, Decimal] = {}
    for day, counters in per_day.items():
        if until is not None and day > until:
            continue
        for name, value in counters.items():
            if name.startswith(prefix):
                rest = name[len(prefix) :]
                found[rest] = found.get(rest, Decimal(0)) + value
    return found


def _money(value: Decimal) -> str:
    return str(value.quantize(formulas.CENT, rounding=ROUND_HALF_EVEN))


def _share(part: Decimal, whole: Decimal) -> float | None:
    return None if whole == 0 else round(float(part / whole), 4)


def _running(
    per_day: Days, months: list[tuple[str, date, date]], prefix: str
) -> dict[str, dict[str, Decimal]]:
    """Running totals of the `prefix` counters at the end of each month, keyed by month."""
    at = running_totals(per_day, (end for _, _, end in months), _without(prefix))
    return {key: at[end] for key, _, end in months}


def _without(prefix: str) -> Callable[[str], str | None]:
    return lambda name: name[len(prefix) :] if name.startswith(prefix) else None


def supplier_grid(per_day: Days, first: date, last: date) -> dict[str, Any]:
    months = _month_ends(first, last)
    sizes = _totals(per_day, "cohsize|")
    bases = _totals(per_day, "cohbase|")
    paying_at, mrr_at = _running(per_day, months, "cohcust|"), _running(per_day, months, "cohmrr|")
    grid: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(sizes):
        cohort, currency = name.split("|", 1)
        if not first <= date.fromisoformat(f"{cohort}-01") <= last:
            continue
        size, base = sizes[name], bases.get(name, Decimal(0))
        row = {"cohort": cohort, "suppliers": int(size), "first_mrr": _money(base)}
        cells = []
        for since, (key, _, _) in enumerate(k for k in months if k[0] >= cohort):
            paying = paying_at[key].get(name, Decimal(0))
            mrr = mrr_at[key].get(name, Decimal(0))
            cells.append(
                {
                    "months_since": since,
                    "month": key,
                    "paying": int(paying),
                    "mrr": _money(mrr),
                    "logo_retention": _share(paying, size),
                    "mrr_retention": _share(mrr, base),
                }
            )
        row["months"] = cells
        grid.setdefault(currency, []).append(row)
    return grid


def couple_grid(per_day: Days, first: date, last: date) -> list[dict[str, Any]]:
    rows = []
    months = _month_ends(first, last)
    for key, start, end in months:
        days_of = {d: c for d, c in per_day.items() if start <= d <= end}
        size = _totals(days_of, "fun|").get("signed_up", Decimal(0))
        if not size:
            continue
        booked_after = {int(k): v for k, v in _totals(days_of, "cplcoh|").items()}
        cells, booked = [], Decimal(0)
        for since, (month, _, _) in enumerate(m for m in months if m[0] >= key):
            booked += booked_after.get(since, Decimal(0))
            cells.append(
                {
                    "months_since": since,
                    "month": month,
                    "booked": int(booked),
                    "booked_share": _share(booked, size),
                }
            )
        rows.append({"cohort": key, "couples": int(size), "months": cells})
    return rows


def cohorts(org_id: str, query: RangeQuery, now: float | None = None) -> dict[str, Any]:
    moment = time.time() if now is None else now
    months = _month_ends(query.start, query.end)
    first, last = months[0][1], months[-1][2]
    per_day = read_counters(org_id, last, moment)
    return {
        "org_id": org_id,
        "range": {"from": first.isoformat(), "to": last.isoformat()},
        "suppliers": supplier_grid(per_day, first, last),
        "couples": couple_grid(per_day, first, last),
        "definitions": {
            "suppliers": "per currency, cohorts by the month of a supplier's first paid "
            "subscription; logo_retention = suppliers of the cohort paying at the end of the "
            "month / the cohort's suppliers; mrr_retention = the cohort's MRR at the end of the "
            "month / its first MRR (above 1 when the cohort expanded); reactivated suppliers "
            "count again in their first cohort",
            "couples": "cohorts by signup month; booked_share = couples of the cohort whose "
            "first vendor booking came by the end of that month / couples who signed up",
        },
    }


def _median(histogram: dict[int, Decimal]) -> float | None:
    """The median of a bucketed distribution, as its bucket's middle (within about 5 %)."""
    total = sum(histogram.values(), Decimal(0))
    if not total:
        return None
    running = Decimal(0)
    for index in sorted(histogram):
        running += histogram[index]
        if running * 2 >= total:
            return round(funnel.bucket_seconds(index))
    return None  # pragma: no cover - the loop always reaches half


def funnel_of(per_day: Days, first: date, last: date) -> dict[str, Any]:
    days_of = {d: c for d, c in per_day.items() if first <= d <= last}
    reached = _totals(days_of, "fun|")
    times = _totals(days_of, "funt|")
    steps = []
    previous: Decimal | None = None
    for step in funnel.STEPS:
        couples = reached.get(step, Decimal(0))
        histogram = {
            int(name.split("|", 1)[1]): v
            for name, v in times.items()
            if name.startswith(step + "|")
        }
        entry: dict[str, Any] = {"step": step, "couples": int(couples)}
        if previous is not None:
            entry["conversion"] = formulas.ratio(
                couples, previous, "no couple reached the step before"
            )
            entry["median_seconds_from_previous"] = _median(histogram)
        steps.append(entry)
        previous = couples
    signed = reached.get("signed_up", Decimal(0))
    return {
        "steps": steps,
        "overall": formulas.ratio(
            reached.get("vendor_booked", Decimal(0)), signed, "no couple signed up in the range"
        ),
    }


def funnel_answer(org_id: str, query: RangeQuery, now: float | None = None) -> dict[str, Any]:
    moment = time.time() if now is None else now
    per_day = read_counters(org_id, query.end, moment)
    return {
        "org_id": org_id,
        "range": {"from": query.start.isoformat(), "to": query.end.isoformat()},
        **funnel_of(per_day, query.start, query.end),
        "definitions": {
            "funnel": "couples who signed up in the range (user.signed_up, user_type couple), "
            "and of them those who then created a wedding, searched for a vendor and booked "
            "one, each step at or after the one before (first time of each), whenever it "
            "happened; conversion = couples at the step / couples at the step before",
            "median_seconds_from_previous": "median time from the previous step, from a "
            "histogram of buckets about 9 % wide (the value is its bucket's middle)",
        },
    }
