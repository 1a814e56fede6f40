"""Where export rows come from: columns, typed values and resumable row sources.

Every source yields `(row, cursor)`: the cursor is a small JSON value from which the same source
continues with the very next row, so a worker that checkpoints a cursor and dies is resumed
exactly. Events are read from the `ByDay` index, day by day; the SHARDS slices of a day are
queried independently and merged on their sort key (`occurred_at#event id`), so rows come out in
time order and `(day, last sort key)` is the whole cursor.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from success_metrics.exports.models import Dataset, Filters
from success_metrics.metrics import query
from success_metrics.metrics.periods import Granularity
from success_metrics.stores import events as events_store
from success_metrics.stores import organizations
from success_metrics.stores.events import SHARDS
from success_metrics.stores.metrics import read_counters

Row = dict[str, Any]
Cursor = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    # text | int | number | money | datetime | date | bool | json
    kind: str = "text"


EVENT_COLUMNS = (
    Column("event_id"),
    Column("type"),
    Column("category"),
    Column("occurred_at", "datetime"),
    Column("received_at", "datetime"),
    Column("user_id"),
    Column("anonymous_id"),
    Column("user_type"),
    Column("revenue_amount", "money"),
    Column("revenue_currency"),
    Column("country"),
    Column("region"),
    Column("device"),
    Column("locale"),
    Column("consent_analytics", "bool"),
    Column("consent_marketing", "bool"),
    Column("properties", "json"),
)
METRIC_COLUMNS = (
    Column("period"),
    Column("from", "date"),
    Column("to", "date"),
    Column("metric"),
    Column("value", "number"),
    Column("note"),
)
ACCESS_COLUMNS = (
    Column("record"),
    Column("at", "datetime"),
    Column("id"),
    Column("data", "json"),
)
COLUMNS: dict[Dataset, tuple[Column, ...]] = {
    Dataset.EVENTS: EVENT_COLUMNS,
    Dataset.METRICS: METRIC_COLUMNS,
    Dataset.SUMMARY: METRIC_COLUMNS,
    Dataset.ACCESS: ACCESS_COLUMNS,
}


def columns(dataset: Dataset) -> tuple[Column, ...]:
    return COLUMNS[dataset]


# ------------------------------------------------------------------ events


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def event_row(doc: dict[str, Any]) -> Row:
    """One exported row of a stored event. IP address and user agent are never exported."""
    revenue = doc.get("revenue") or {}
    context = doc.get("context") or {}
    consent = doc.get("consent") or {}
    return {
        "event_id": doc["id"],
        "type": doc["type"],
        "category": doc.get("category"),
        "occurred_at": _instant(doc["occurred_at"]),
        "received_at": datetime.fromtimestamp(int(doc["received_at"]), tz=UTC)
        if doc.get("received_at") is not None
        else None,
        "user_id": doc.get("user_id"),
        "anonymous_id": doc.get("anonymous_id"),
        "user_type": doc.get("user_type"),
        "revenue_amount": Decimal(revenue["amount"]) if revenue.get("amount") else None,
        "revenue_currency": revenue.get("currency"),
        "country": context.get("country"),
        "region": context.get("region"),
        "device": context.get("device"),
        "locale": context.get("locale"),
        "consent_analytics": consent.get("analytics"),
        "consent_marketing": consent.get("marketing"),
        "properties": doc.get("properties") or None,
    }


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def event_rows(
    org_id: str, first: date, last: date, filters: Filters, cursor: Cursor | None, now: float
) -> Iterator[tuple[Row, Cursor]]:
    """Events of [first, last] in (occurred_at, event id) order, resumable from `cursor`."""
    start = date.fromisoformat(cursor["day"]) if cursor else first
    for day in days(start, last):
        after = cursor["after"] if cursor and day == start else None
        streams = [
            events_store.shard_items(org_id, day, s, after, filters, now) for s in range(SHARDS)
        ]
        for sort_key, item in heapq.merge(*streams, key=lambda pair: pair[0]):
            yield (
                event_row(json.loads(item["body"]["S"])),
                {
                    "day": day.isoformat(),
                    "after": sort_key,
                },
            )


# ------------------------------------------------------------------ metrics


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def flatten(prefix: str, value: Any) -> Iterator[tuple[str, Decimal | None, str | None]]:
    """(metric path, value, note) leaves of a metrics document; a ratio is one metric with its
    reason as the note, its numerator and denominator as sub-metrics."""
    if isinstance(value, dict):
        if "value" in value:
            yield prefix, _number(value["value"]), value.get("reason")
            for key, inner in value.items():
                if key not in ("value", "reason"):
                    yield from flatten(f"{prefix}.{key}", inner)
            return
        for key, inner in value.items():
            yield from flatten(f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from flatten(f"{prefix}.{index}", inner)
    elif isinstance(value, str) and _number(value) is None:
        yield prefix, None, value
    else:
        yield prefix, _number(value), None


def metric_rows(result: dict[str, Any], summary: bool) -> Iterator[Row]:
    """Rows of the `metrics` dataset (every period) or the `summary` dataset (the range)."""
    if summary:
        sections = [("total", result["from"], result["to"], result["totals"])]
        sections.append(("seasonal", result["from"], result["to"], result["seasonal"]))
    else:
        sections = [(p["period"], p["from"], p["to"], p["metrics"]) for p in result["periods"]]
    for period, start, end, metrics in sections:
        for metric, value, note in flatten("", metrics):
            yield {
                "period": period,
                "from": date.fromisoformat(start),
                "to": date.fromisoformat(end),
                "metric": metric,
                "value": value,
                "note": note,
            }


def metrics_result(
    org_id: str, first: date, last: date, granularity: Granularity, now: float
) -> dict[str, Any]:

    org = organizations.get_organization(org_id)
    request = query.MetricsQuery.model_validate(
        {"from": first, "to": last, "granularity": granularity}
    )
    return query.metrics(org_id, request, org.gross_margin, now)


def indexed_rows(rows: Iterator[Row], cursor: Cursor | None) -> Iterator[tuple[Row, Cursor]]:
    """A computed (small, deterministic) source resumed by row index."""
    skip = int(cursor["index"]) if cursor else 0
    for index, row in enumerate(rows):
        if index >= skip:
            yield row, {"index": index + 1}


# ------------------------------------------------------------------ estimates


def day_counts(
    org_id: str, first: date, last: date, filters: Filters, now: float
) -> dict[date, int]:
    """Events per day from the metric counters (one small read), for planning and percent.

    With a type filter only those types count; a user-type filter scales each day by that user
    type's share, so it is an estimate, never a promise.
    """

    counts: dict[date, int] = {}
    for day, counters in read_counters(org_id, last, now).items():
        if day < first:
            continue
        per_type = {k[2:]: v for k, v in counters.items() if k.startswith("n|")}
        total = sum(per_type.values(), Decimal(0))
        wanted = (
            sum((per_type.get(t, Decimal(0)) for t in set(filters.types)), Decimal(0))
            if filters.types
            else total
        )
        if filters.user_type and total:
            share = counters.get(f"utype|{filters.user_type.value}", Decimal(0)) / total
            wanted *= share
        counts[day] = int(wanted)
    return counts


# ------------------------------------------------------------------ access requests


def access_rows(
    org_id: str, user: str, extra: list[Row], cursor: Cursor | None, now: float
) -> Iterator[tuple[Row, Cursor]]:
    """Every stored event of the user, then `extra` (consent and delivery records, gathered
    when the job was planned); resumable from the cursor."""
    phase = (cursor or {}).get("phase", "events")
    if phase == "events":
        after = (cursor or {}).get("after")
        for doc, sort_key in events_store.user_events(org_id, user, after, now):
            row = {
                "record": "event",
                "at": _instant(doc["occurred_at"]),
                "id": doc["id"],
                "data": doc,
            }
            yield row, {"phase": "events", "after": sort_key}
        cursor = None
    skip = int((cursor or {}).get("index", 0))
    for index, row in enumerate(extra):
        if index >= skip:
            yield row, {"phase": "extra", "index": index + 1}
