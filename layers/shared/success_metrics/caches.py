"""Every in-process cache in one reset, for tests and the local stack's fresh invocations."""

from __future__ import annotations

from success_metrics import aws, ingest, secret_box, settings
from success_metrics.stores import organizations


def reset_all() -> None:

    settings.reset_settings()
    aws.reset_clients()
    secret_box.clear_cache()
    organizations.clear_cache()
    ingest.reset()
