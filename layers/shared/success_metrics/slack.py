"""A minimal Slack incoming-webhook client for the digest, alerts and alarms (Block Kit messages).

Every post goes out through the SSRF guard's client (`sync/ssrf.py`, the one customer webhooks
use): the address is checked at connect time, after DNS resolution, and redirects are never
followed. A Slack URL must also be https and name a host in `SLACK_ALLOWED_HOSTS` (default
`hooks.slack.com`); plain http only to loopback, and only when the local stack allows it. The
rule is checked when a URL is configured (`check_url`) and again before each post.
"""

from __future__ import annotations

import time
from typing import Any

from success_metrics.settings import get_settings
from success_metrics.sync import ssrf
from success_metrics.urls import check_slack_url as check_url

__all__ = ["SlackError", "check_url", "describe", "post"]

MIN_INTERVAL = 1.0  # Slack allows about one message per second per incoming webhook
_last_post: dict[str, float] = {}


class SlackError(Exception):
    """Slack did not accept the message (or the URL was refused before anything was sent)."""


def describe(error: Exception) -> str:
    """What a failed post may say in a log: Slack's own answer, the guard's reason (it names the
    host, never the path), or only the kind of transport error (httpx messages can carry the
    webhook URL, whose path is the channel's secret)."""
    if isinstance(error, SlackError):
        return str(error)
    cause: BaseException | None = error
    for _ in range(8):  # the guard's refusal is a few links down (httpcore keeps the context)
        if cause is None:
            break
        if isinstance(cause, ssrf.UnsafeDestinationError):
            return f"{type(error).__name__}: refused, {cause.detail}"
        cause = cause.__cause__ or cause.__context__
    return type(error).__name__


def post(url: str, message: dict[str, Any]) -> None:
    """Post one message; honours one `Retry-After` on 429. Raises `SlackError` when Slack does not
    accept it or the URL is refused, `httpx.HTTPError` when it cannot be reached (including a
    host the guard refuses at connect time)."""
    try:
        # Again at send time: a URL stored before the rule, or an allowlist since narrowed. The
        # guarded client resolves and checks the address itself when it connects.
        check_url(url, resolve=False)
    except ssrf.UnsafeDestinationError as exc:
        raise SlackError(f"not posted: {exc.detail}") from None
    wait = _last_post.get(url, 0.0) + MIN_INTERVAL - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    settings = get_settings()
    with ssrf.guarded_client(allow_loopback=settings.allow_loopback_webhooks) as client:
        for attempt in range(2):
            response = client.post(url, json=message)
            if response.status_code == 429 and attempt == 0:
                time.sleep(min(float(response.headers.get("retry-after", "1")), 5.0))
                continue
            _last_post[url] = time.monotonic()
            if response.status_code >= 300:
                raise SlackError(f"Slack answered {response.status_code}: {response.text[:200]}")
            return
