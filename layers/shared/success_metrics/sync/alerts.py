"""Operational alerts to the organization's Slack (breaker opened, destination disabled)."""

from __future__ import annotations

import httpx

from success_metrics import slack
from success_metrics.models.destinations import Destination
from success_metrics.observability import logger
from success_metrics.stores import destinations, organizations


def _slack_urls(org_id: str) -> list[str]:
    org = organizations.get_organization(org_id)
    urls = [u for u in [organizations.slack_webhook(org)] if u]
    for dest in destinations.list_all(org_id):
        if dest.kind == "slack" and dest.enabled:
            urls.append(destinations.secrets(dest)["webhook_url"])
    return list(dict.fromkeys(urls))


def post(org_id: str, text: str) -> int:
    """Post `text` to every Slack the organization configured; returns how many accepted it."""
    message = {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }
    posted = 0
    for url in _slack_urls(org_id):
        try:
            slack.post(url, message)
            posted += 1
        except (slack.SlackError, httpx.HTTPError) as exc:
            logger.warning("alert not delivered to Slack", extra={"error": slack.describe(exc)})
    return posted


def breaker_opened(dest: Destination) -> int:
    return post(
        dest.org_id,
        f":warning: Deliveries to {dest.kind} destination *{dest.name}* ({dest.dest_id}) keep "
        "failing: its circuit breaker is open. Events wait in the queue and are retried "
        "after 30 seconds.",
    )
