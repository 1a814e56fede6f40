"""A minimal Slack incoming-webhook client for the digest and alerts (Block Kit messages).

Platform sync (docs/sync.md, issue 5) hardens delivery; this one posts, honours one
`Retry-After` on 429, and refuses anything but https unless the local stack allows loopback.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from success_metrics.errors import ValidationFailedError
from success_metrics.settings import get_settings

TIMEOUT = httpx.Timeout(10.0, connect=3.0)
MIN_INTERVAL = 1.0  # Slack allows about one message per second per incoming webhook
_last_post: dict[str, float] = {}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SlackError(Exception):
    """Slack did not accept the message."""


def describe(error: Exception) -> str:
    """What a failed post may say in a log: Slack's own answer, or only the kind of transport
    error (httpx messages can carry the webhook URL, whose path is the channel's secret)."""
    return str(error) if isinstance(error, SlackError) else type(error).__name__


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if (
        get_settings().allow_loopback_webhooks
        and parts.scheme == "http"
        and parts.hostname in LOOPBACK
    ):
        return
    raise ValidationFailedError("Slack webhooks must be https URLs")


def post(url: str, message: dict[str, Any]) -> None:
    check_url(url)
    wait = _last_post.get(url, 0.0) + MIN_INTERVAL - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        for attempt in range(2):
            response = client.post(url, json=message)
            if response.status_code == 429 and attempt == 0:
                time.sleep(min(float(response.headers.get("retry-after", "1")), 5.0))
                continue
            _last_post[url] = time.monotonic()
            if response.status_code >= 300:
                raise SlackError(f"Slack answered {response.status_code}: {response.text[:200]}")
            return
