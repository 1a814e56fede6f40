"""The rules a configured URL must meet, checked where it is configured (models, `smctl`) and
again where it is used: below every module that stores or sends to one, so models can check
them without importing a client.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from success_metrics.settings import get_settings
from success_metrics.sync import ssrf


def check_slack_url(url: str, *, resolve: bool = True) -> None:
    """Refuse a Slack URL unless it is https (plain http: loopback, local stack only), carries
    no credentials, names a host in `SLACK_ALLOWED_HOSTS` and (with `resolve`) that host resolves
    to public addresses only. Raises `ssrf.UnsafeDestinationError` (a 400 problem document)."""
    settings = get_settings()
    allowed = settings.slack_hosts()
    rule = (
        "Slack webhooks must be https URLs on "
        + (" or ".join(sorted(allowed)) if allowed else "no host (SLACK_ALLOWED_HOSTS is empty)")
        + " (SLACK_ALLOWED_HOSTS)"
    )
    try:
        ssrf.check_url(url, allow_loopback=settings.allow_loopback_webhooks)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # an UnsafeDestinationError is not one; a bad port is
        raise ssrf.UnsafeDestinationError(f"{rule}: the URL is malformed") from exc
    except ssrf.UnsafeDestinationError as exc:
        raise ssrf.UnsafeDestinationError(f"{rule}: {exc.detail}") from exc
    host = (parts.hostname or "").lower()
    if host not in allowed:
        raise ssrf.UnsafeDestinationError(f"{rule}: {host} is not allowed")
    if resolve:
        try:
            ssrf.resolve_public(host, port, allow_loopback=settings.allow_loopback_webhooks)
        except ssrf.UnsafeDestinationError as exc:
            raise ssrf.UnsafeDestinationError(f"{rule}: {exc.detail}") from exc
