"""GA4's validation server (`/debug/mp/collect`) asked about a destination: a sample event in
the exact shape the sync sends, and the validation messages GA4 answers with."""

from __future__ import annotations

import time
from typing import Any

from success_metrics.errors import ValidationFailedError
from success_metrics.settings import get_settings
from success_metrics.stores import destinations
from success_metrics.sync import platforms, ssrf


def validate_ga4(org_id: str, dest_id: str) -> tuple[int, list[dict[str, Any]]]:
    """(GA4's status code, its validation messages) for a sample event; no messages is valid."""
    found = destinations.get(org_id, dest_id)
    if found.kind != "ga4":
        raise ValidationFailedError("only GA4 offers a validation endpoint (/debug/mp/collect)")
    sample = {
        "id": "evt_validate",
        "type": "user.signed_up",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user_id": "usr_validate",
        "properties": {"channel": "validation"},
    }
    requests, _ = platforms.ga4_requests([sample], time.time())
    _, body = requests[0]
    settings = get_settings()
    with ssrf.guarded_client(allow_loopback=settings.allow_loopback_webhooks) as client:
        response = client.post(
            f"{settings.ga4_api_url.rstrip('/')}/debug/mp/collect",
            params={
                "measurement_id": str(found.public["measurement_id"]),
                "api_secret": destinations.secrets(found)["api_secret"],
            },
            json=body,
        )
    try:
        messages = list(response.json().get("validationMessages", []))
    except ValueError:
        messages = [{"description": response.text[:200]}]
    return response.status_code, messages
