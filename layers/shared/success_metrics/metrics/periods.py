"""Calendar buckets for each granularity: day, ISO week, month and wedding season.

Seasons: peak is May-October; off-peak is November to April and belongs to the year it starts
in (2026-offpeak = 2026-11-01 .. 2027-04-30).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

PEAK_MONTHS = range(5, 11)


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    SEASON = "season"


def is_peak(day: date) -> bool:
    return day.month in PEAK_MONTHS


def bucket(day: date, granularity: Granularity) -> str:
    if granularity is Granularity.DAY:
        return day.isoformat()
    if granularity is Granularity.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity is Granularity.MONTH:
        return f"{day:%Y-%m}"
    if is_peak(day):
        return f"{day.year}-peak"
    return f"{day.year if day.month >= 11 else day.year - 1}-offpeak"


def bounds(day: date, granularity: Granularity) -> tuple[date, date]:
    """First and last day of the bucket holding `day`."""
    if granularity is Granularity.DAY:
        return day, day
    if granularity is Granularity.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if granularity is Granularity.MONTH:
        start = day.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following - timedelta(days=1)
    if is_peak(day):
        return date(day.year, 5, 1), date(day.year, 10, 31)
    year = day.year if day.month >= 11 else day.year - 1
    return date(year, 11, 1), date(year + 1, 5, 1) - timedelta(days=1)


def buckets(start: date, end: date, granularity: Granularity) -> Iterator[tuple[str, date, date]]:
    """Whole buckets covering [start, end], in order."""
    day = start
    while day <= end:
        first, last = bounds(day, granularity)
        yield bucket(day, granularity), first, last
        day = last + timedelta(days=1)


def days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def months_in(start: date, end: date) -> float:
    """Length of [start, end] in average months (for monthly rates)."""
    return ((end - start).days + 1) / (365.25 / 12)


def running_totals(
    per_day: dict[date, dict[str, Decimal]],
    ends: Iterable[date],
    rename: Callable[[str], str | None],
) -> dict[date, dict[str, Decimal]]:
    """The running totals, up to and including each day of `ends`, of the counters `rename`
    keeps (under the name it returns), in one pass over the days: a state at any point of a
    range (paying suppliers, MRR, a cohort's customers) is then one lookup. Only the requested
    points are copied, so the cost is the days plus the points, not days times counters."""
    ordered = sorted(per_day)
    running: dict[str, Decimal] = {}
    at: dict[date, dict[str, Decimal]] = {}
    index = 0
    for end in sorted(set(ends)):
        while index < len(ordered) and ordered[index] <= end:
            for name, value in per_day[ordered[index]].items():
                kept = rename(name)
                if kept is not None:
                    running[kept] = running.get(kept, Decimal(0)) + value
            index += 1
        at[end] = dict(running)
    return at
