"""What each console page shows, computed by the same functions the API answers with
(`metrics.api.get_metrics`), so a number on a page is the number `GET /v1/metrics` gives for the
same range. The templates only lay the numbers out."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

from success_metrics.console import charts
from success_metrics.errors import ValidationFailedError
from success_metrics.http import Principal
from success_metrics.metrics import api as metrics_api
from success_metrics.models.organizations import Scope

Series = dict[str, float | None]
DEFAULT_DAYS = 30
GRANULARITIES = ("day", "week", "month", "season")


def _value(entry: Any) -> float | None:
    """A figure of the answer as a number: plain, `{"value": …}` or a money string."""
    if isinstance(entry, dict):
        entry = entry.get("value", entry.get("total"))
    if entry is None or isinstance(entry, dict):
        return None
    return float(Decimal(str(entry)))


def _plain(name: str) -> Callable[[dict[str, Any]], Series]:
    return lambda m: {"": _value(m.get(name))}


def _money(name: str) -> Callable[[dict[str, Any]], Series]:
    return lambda m: {cur: _value(f.get(name)) for cur, f in sorted(m.get("money", {}).items())}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    series: Callable[[dict[str, Any]], Series]
    kind: str = "count"  # count | ratio | money | coefficient
    tile: bool = True
    lower_is_better: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("signups", "Signups", _plain("signups")),
    Metric("trials_started", "Trials started", _plain("trials_started")),
    Metric("trial_to_paid", "Trial-to-paid", _plain("trial_to_paid"), "ratio"),
    Metric("new_paying_suppliers", "New paying suppliers", _plain("new_paying_suppliers")),
    Metric("revenue", "Revenue", _money("revenue"), "money"),
    Metric("cac", "CAC", _money("cac"), "money", lower_is_better=True),
    Metric("clv", "CLV", _money("clv"), "money"),
    Metric("k_factor", "K-factor", _plain("k_factor"), "coefficient"),
    Metric("mrr_end", "MRR", _money("mrr_end"), "money"),
    Metric(
        "net_mrr_churn", "Net MRR churn", _money("net_mrr_churn"), "ratio", lower_is_better=True
    ),
    Metric(
        "net_revenue_retention", "Net revenue retention", _money("net_revenue_retention"), "ratio"
    ),
    Metric("active_users", "Active users", _plain("active_users"), tile=False),
    Metric("sessions", "Sessions", _plain("sessions"), tile=False),
    Metric("arpa", "ARPA", _money("arpa"), "money", tile=False),
    Metric("quick_ratio", "Quick ratio", _money("quick_ratio"), "coefficient", tile=False),
    Metric("ltv", "LTV", _money("ltv"), "money", tile=False),
)
BY_KEY = {m.key: m for m in METRICS}


def parse_range(params: dict[str, str], today: date | None = None) -> tuple[date, date]:
    """`from` and `to` of a page (default: the last 30 days, today included)."""
    today = today or datetime.now(UTC).date()
    try:
        end = date.fromisoformat(params["to"]) if params.get("to") else today
        start = (
            date.fromisoformat(params["from"])
            if params.get("from")
            else end - timedelta(days=DEFAULT_DAYS - 1)
        )
    except ValueError as exc:
        raise ValidationFailedError("'from' and 'to' are days, as 2026-05-01") from exc
    if start > end:
        raise ValidationFailedError("'from' must not be after 'to'")
    return start, end


@dataclass(frozen=True)
class Num:
    """A number as the page shows it: `text` (formatted on the server, in English, for every
    reader and with JavaScript off) inside a `<data value>` element that carries the exact value,
    its kind and currency, from which the script formats it in the viewer's locale."""

    raw: float | None
    kind: str
    currency: str
    text: str

    def __str__(self) -> str:
        return self.text

    def __html__(self) -> str:
        text = escape(self.text)
        if self.raw is None:
            return str(text)
        return str(
            Markup('<data value="{}" data-kind="{}" data-currency="{}">{}</data>').format(
                repr(float(self.raw)), self.kind, self.currency, text
            )
        )


def fmt(value: float | None, kind: str, currency: str = "") -> Num:
    if value is None:
        return Num(None, kind, currency, "n/a")
    value = float(value)
    if kind == "ratio":
        text = f"{value:.1%}" if abs(value) < 10 else f"{value:,.2f}"
    elif kind == "coefficient":
        text = f"{value:,.4f}".rstrip("0").rstrip(".") if value else "0"
    elif kind == "money":
        text = f"{value:,.2f} {currency}".strip()
    else:
        text = f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return Num(value, kind, currency if kind == "money" else "", text)


def number(value: Any, kind: str = "count", currency: str = "") -> Any:
    """`fmt` for a template: numbers and numeric strings become `Num`, anything else
    (a label, "n/a", a dash) is left as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        try:
            value = float(value.replace(",", ""))
        except ValueError:
            return value
    if isinstance(value, int | float | Decimal):
        return fmt(float(value), kind, currency)
    return value


def _change(now: float | None, before: float | None) -> str | None:
    if now is None or before is None or before == 0:
        return None
    return f"{(now - before) / abs(before):+.0%}"


def _better(now: float | None, before: float | None, lower_is_better: bool) -> bool | None:
    if now is None or before is None or now == before:
        return None
    return (now < before) == lower_is_better


@dataclass
class Tile:
    label: str
    value: Num
    previous: Num
    change: str | None
    better: bool | None  # whether the change is good news (None: no change to judge)
    sparkline: str
    alt: str
    raw: float | None = None  # for the page's script to format in the viewer's locale
    kind: str = "count"
    currency: str = ""


@dataclass
class Overview:
    start: date
    end: date
    previous_start: date
    previous_end: date
    tiles: list[Tile] = field(default_factory=list)
    seasonal_peak: Num = Num(None, "ratio", "", "n/a")
    seasonal_off_peak: Num = Num(None, "ratio", "", "n/a")
    empty: bool = True


def _answer(principal: Principal, start: date, end: date, granularity: str) -> dict[str, Any]:
    return metrics_api.get_metrics(
        principal, {"from": start.isoformat(), "to": end.isoformat(), "granularity": granularity}
    )


def overview(principal: Principal, params: dict[str, str]) -> Overview:
    start, end = parse_range(params)
    length = end - start
    previous_end = start - timedelta(days=1)
    previous_start = previous_end - length
    now = _answer(principal, start, end, "day")
    before = _answer(principal, previous_start, previous_end, "day")
    page = Overview(start, end, previous_start, previous_end)
    page.empty = not any(
        p["metrics"].get("sessions") or p["metrics"]["signups"]["total"] for p in now["periods"]
    ) and not now["totals"].get("money")
    for metric in (m for m in METRICS if m.tile):
        current, prior = metric.series(now["totals"]), metric.series(before["totals"])
        for name, value in current.items():
            label = f"{metric.label} ({name})" if name else metric.label
            daily = [metric.series(p["metrics"]).get(name) for p in now["periods"]]
            shown = fmt(value, metric.kind, name)
            page.tiles.append(
                Tile(
                    label=label,
                    value=shown,
                    previous=fmt(prior.get(name), metric.kind, name),
                    change=_change(value, prior.get(name)),
                    better=_better(value, prior.get(name), metric.lower_is_better),
                    sparkline=charts.sparkline(daily),
                    alt=f"{label} per day from {start} to {end}; total {shown}",
                    raw=value,
                    kind=metric.kind,
                    currency=name,
                )
            )
    seasonal = now["seasonal"]
    page.seasonal_peak = fmt(_value(seasonal["peak"]), "ratio")
    page.seasonal_off_peak = fmt(_value(seasonal["off_peak"]), "ratio")
    return page


@dataclass
class Trend:
    metric: Metric
    granularity: str
    start: date
    end: date
    labels: list[str]
    series: dict[str, list[float | None]]
    chart: str
    alt: str
    rows: list[list[str | Num]]
    header: list[str]


def trend(principal: Principal, params: dict[str, str]) -> Trend:
    start, end = parse_range(params)
    metric = BY_KEY.get(params.get("metric") or "signups")
    if metric is None:
        raise ValidationFailedError(
            f"unknown metric {params.get('metric')!r}; one of {', '.join(BY_KEY)}"
        )
    granularity = params.get("granularity") or "week"
    if granularity not in GRANULARITIES:
        raise ValidationFailedError(f"'granularity' is one of {', '.join(GRANULARITIES)}")
    answer = _answer(principal, start, end, granularity)
    labels = [p["period"] for p in answer["periods"]]
    series: dict[str, list[float | None]] = {}
    for index, period in enumerate(answer["periods"]):
        for name, value in metric.series(period["metrics"]).items():
            series.setdefault(name, [None] * len(labels))[index] = value
    names = sorted(series) or [""]
    header = ["period", "from", "to", *[n or metric.label for n in names]]
    rows = [
        [
            p["period"],
            p["from"],
            p["to"],
            *[fmt(series.get(n, [None] * len(labels))[i], metric.kind, n) for n in names],
        ]
        for i, p in enumerate(answer["periods"])
    ]
    title = f"{metric.label} per {granularity}, {answer['from']} to {answer['to']}"
    return Trend(
        metric=metric,
        granularity=granularity,
        start=date.fromisoformat(answer["from"]),
        end=date.fromisoformat(answer["to"]),
        labels=labels,
        series=series,
        chart=charts.trend(title, labels, {n or metric.label: v for n, v in series.items()}),
        alt=title + ("; the table below holds every value" if labels else "; no data"),
        rows=rows,
        header=header,
    )


def trend_csv(principal: Principal, params: dict[str, str]) -> str:
    """Exactly the numbers the chart draws, one row per period, unrounded."""
    found = trend(principal, params)
    out = io.StringIO()
    writer = csv.writer(out)
    names = sorted(found.series) or [""]
    writer.writerow(["period", *[n or found.metric.key for n in names]])
    for i, label in enumerate(found.labels):
        writer.writerow(
            [
                label,
                *[
                    ""
                    if (v := found.series.get(n, [None] * len(found.labels))[i]) is None
                    else repr(v)
                    for n in names
                ],
            ]
        )
    return out.getvalue()


def can(principal: Principal, scope: Scope) -> bool:
    return scope.value in principal.scopes


@dataclass
class CohortsPage:
    start: date
    end: date
    suppliers: dict[str, list[dict[str, Any]]]
    couples: list[dict[str, Any]]
    funnel: dict[str, Any]
    width: int  # months since, the widest row


def cohorts(principal: Principal, params: dict[str, str]) -> CohortsPage:
    """The retention grids and the couple funnel: `GET /v1/metrics/cohorts` and
    `/v1/metrics/funnel` for the same range."""
    start, end = parse_range(params)
    query = {"from": start.isoformat(), "to": end.isoformat()}
    grids = metrics_api.get_cohorts(principal, query)
    funnel = metrics_api.get_funnel(principal, query)
    rows = [r for cohort in grids["suppliers"].values() for r in cohort] + grids["couples"]
    width = max((len(r["months"]) for r in rows), default=0)
    return CohortsPage(start, end, grids["suppliers"], grids["couples"], funnel, width)


# -- breakdowns --------------------------------------------------------------------------------

DIMENSIONS = ("channel", "user_type", "country", "region", "device", "feature", "milestone")


@dataclass
class BreakdownPage:
    start: date
    end: date
    dimension: str
    granularity: str
    columns: list[str]
    periods: list[tuple[str, list[tuple[str, list[str]]]]]  # (period, [(row, cells)])
    adoption: list[tuple[str, list[Num]]]  # feature adoption share per period, by feature


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k} " if prefix or k else ""))
        return out
    return {prefix.strip() or "value": str(value)}


def breakdowns(principal: Principal, params: dict[str, str]) -> BreakdownPage:
    """`GET /v1/metrics?breakdown=…` for the range as tables, one per period; at season
    granularity the periods are peak (May-October) and off-peak."""
    start, end = parse_range(params)
    dimension = params.get("dimension") or "channel"
    granularity = params.get("granularity") or "season"
    answer = metrics_api.get_metrics(
        principal,
        {"from": start.isoformat(), "to": end.isoformat(), "granularity": granularity,
         "breakdown": "country" if dimension == "region" else dimension},
    )  # fmt: skip
    tables = []
    columns: dict[str, None] = {}
    for period in answer["periods"]:
        found = period["metrics"].get("breakdown", {})
        flat: dict[str, dict[str, str]] = {}
        for key, value in found.items():
            if dimension == "region":
                for region, events in value.get("regions", {}).items():
                    flat[f"{key} / {region}"] = {"events": str(events)}
            elif dimension == "country":
                flat[key] = _flatten({k: v for k, v in value.items() if k != "regions"})
            else:
                flat[key] = _flatten(value)
        for cells in flat.values():
            columns.update(dict.fromkeys(cells))
        tables.append((period["period"], flat))
    names = list(columns)
    periods = [
        (label, [(row, [cells.get(c, "0") for c in names]) for row, cells in sorted(flat.items())])
        for label, flat in tables
    ]
    features = sorted({f for p in answer["periods"] for f in p["metrics"]["feature_adoption"]})
    adoption = [
        (
            feature,
            [
                _share(p["metrics"]["feature_adoption"].get(feature, {}).get("value"))
                for p in answer["periods"]
            ],
        )
        for feature in features
    ]
    return BreakdownPage(start, end, dimension, granularity, names, periods, adoption)


def _share(value: Any) -> Num:
    return fmt(None if value is None else float(value), "ratio")
