"""The daily digest and threshold alerts, posted to each organization's Slack as Block Kit.

Yesterday's figures, and the last 7 days against the 7 before, for the additive measures
(distinct-user measures are shown for yesterday only: they do not add up across days).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from success_metrics import slack
from success_metrics.metrics import formulas
from success_metrics.metrics.periods import Granularity
from success_metrics.metrics.query import build_period
from success_metrics.models.organizations import Organization
from success_metrics.observability import logger
from success_metrics.stores import organizations
from success_metrics.stores.metrics import read_counters

HEADLINES = ("signups", "trials_started", "new_paying_suppliers", "sessions")


def _period(
    per_day: dict[date, dict[str, Decimal]], first: date, last: date, org: Organization
) -> dict[str, Any]:
    return formulas.compute(
        build_period(per_day, f"{first}..{last}", first, last, Granularity.DAY, org.gross_margin)
    )


def metric_value(metrics: dict[str, Any], name: str) -> Decimal | None:
    """A single figure by name: `signups`, `trial_to_paid`, `revenue:GBP`, `cac:GBP`,
    `net_mrr_churn:EUR`, ...; a per-currency name without a currency means the organization's
    only currency (none when it has several)."""
    base, _, currency = name.partition(":")
    if not currency and base not in metrics and len(metrics["money"]) == 1:
        # A per-currency figure (net_mrr_churn, ltv...) of an organization with one currency.
        currency = next(iter(metrics["money"]))
    if currency:
        money = metrics["money"].get(currency, {})
        value = money.get(base)
        value = value.get("value") if isinstance(value, dict) else value
    else:
        value = metrics.get(base)
        if isinstance(value, dict):
            value = value.get("value", value.get("total"))
    if value is None or isinstance(value, dict):
        return None
    return Decimal(str(value))


def _change(current: Decimal | None, previous: Decimal | None) -> str:
    if current is None:
        return "n/a"
    if previous is None or previous == 0:
        return f"{current}"
    pct = (current - previous) / previous * 100
    return f"{current} ({pct:+.0f}% vs previous 7 days)"


def build(org: Organization, day: date, per_day: dict[date, dict[str, Decimal]]) -> dict[str, Any]:
    yesterday = _period(per_day, day, day, org)
    last7 = _period(per_day, day - timedelta(days=6), day, org)
    prev7 = _period(per_day, day - timedelta(days=13), day - timedelta(days=7), org)

    def field(title: str, name: str, with_yesterday: bool = True) -> dict[str, str]:
        lines = [f"*{title}*"]
        if with_yesterday:
            lines.append(f"yesterday {metric_value(yesterday, name)}")
        lines.append(f"7 days {_change(metric_value(last7, name), metric_value(prev7, name))}")
        return {"type": "mrkdwn", "text": "\n".join(lines)}

    fields = [field(name.replace("_", " ").capitalize(), name) for name in HEADLINES]
    fields += [
        field(f"Revenue {currency}", f"revenue:{currency}", with_yesterday=False)
        for currency in sorted(last7["money"])
    ]
    fields += [
        field(f"MRR {currency}", f"mrr_end:{currency}")
        for currency, money in sorted(last7["money"].items())
        if money.get("mrr_end") not in (None, "0.00")
    ]
    ratio = yesterday["trial_to_paid"]["value"]
    context_line = (
        f"Active users yesterday: {yesterday['active_users']} - trial-to-paid of yesterday's "
        f"trials: {'n/a' if ratio is None else f'{ratio:.0%}'}"
    )
    return {
        "text": f"{org.name}: daily success metrics for {day.isoformat()}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"{org.name} - {day.isoformat()}"[:150]},
            },
            {"type": "section", "fields": fields[:10]},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": context_line}],
            },
        ],
        "_yesterday": yesterday,
    }


def alerts(org: Organization, yesterday: dict[str, Any], day: date) -> list[dict[str, Any]]:
    messages = []
    for rule in org.alerts:
        observed = metric_value(yesterday, rule.metric)
        if observed is not None and rule.crossed(observed):
            text = (
                f":rotating_light: {org.name}: {rule.metric} was {observed} on {day}, "
                f"{rule.op} {rule.value}"
            )
            messages.append(
                {
                    "text": text,
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                }
            )
    return messages


def run(now: float) -> dict[str, Any]:
    day = datetime.fromtimestamp(now, UTC).date() - timedelta(days=1)
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "organizations": 0,
        "digests": 0,
        "alerts": 0,
        "failed": 0,
        "skipped": 0,
    }
    for org in organizations.list_organizations():
        summary["organizations"] += 1
        url = organizations.slack_webhook(org)
        if url is None:
            summary["skipped"] += 1
            continue
        per_day = read_counters(org.org_id, day, now)
        digest = build(org, day, per_day)
        yesterday = digest.pop("_yesterday")
        try:
            slack.post(url, digest)
            summary["digests"] += 1
            for message in alerts(org, yesterday, day):
                slack.post(url, message)
                summary["alerts"] += 1
        except (slack.SlackError, httpx.HTTPError) as exc:
            summary["failed"] += 1
            logger.warning(
                "digest not delivered", extra={"org_id": org.org_id, "error": slack.describe(exc)}
            )
    return summary
