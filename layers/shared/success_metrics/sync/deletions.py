"""Deletion requests to the analytics platforms, for GDPR erasure (SPEC §7).

- **Mixpanel GDPR API v3** (`POST /api/app/data-deletions/v3.0/?token=<project token>`): the
  project's distinct ids to delete, at most 2000 per request, `compliance_type` GDPR, with the
  GDPR OAuth token of an owner or admin as a Bearer token. Answers a task id; Mixpanel completes
  the deletion within weeks. https://docs.mixpanel.com/reference/gdpr-api
- **Google Analytics User Deletion API** (`POST /analytics/v3/userDeletion/userDeletionRequests:
  upsert`): one identifier per request (`USER_ID` or `CLIENT_ID`) for a GA4 `propertyId`,
  authorised with an OAuth access token of scope `analytics.user.deletion`, obtained from a
  stored refresh token. https://developers.google.com/analytics/devguides/config/userdeletion/v3

Each answer is classified like a delivery (`platforms.classify`): 5xx, 408, 429 and timeouts are
retried with the same rules as deliveries; other 4xx are final.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from success_metrics.sync import platforms

MIXPANEL_MAX_IDS = 2000
USER_DELETION_SCOPE = "https://www.googleapis.com/auth/analytics.user.deletion"


def id_batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), MIXPANEL_MAX_IDS):
        yield ids[start : start + MIXPANEL_MAX_IDS]


def mixpanel_delete(
    client: httpx.Client,
    base_url: str,
    project_token: str,
    gdpr_token: str,
    distinct_ids: list[str],
) -> tuple[platforms.Outcome, str | None]:
    """One deletion request; the outcome and Mixpanel's task id."""
    response = client.post(
        f"{base_url.rstrip('/')}/api/app/data-deletions/v3.0/",
        params={"token": project_token},
        json={"distinct_ids": distinct_ids, "compliance_type": "GDPR"},
        headers={"Authorization": f"Bearer {gdpr_token}", "Accept": "application/json"},
    )
    outcome = platforms.classify(response, distinct_ids)
    task_id = None
    if response.status_code < 300:
        try:
            task_id = str(response.json()["results"]["task_id"])
        except (ValueError, KeyError, TypeError):
            outcome = platforms.Outcome(
                response.status_code,
                error=f"unexpected answer: {response.text[:200]}",
                failed=dict.fromkeys(distinct_ids, "no task id in Mixpanel's answer"),
            )
    return outcome, task_id


def google_access_token(
    client: httpx.Client, token_url: str, secrets: dict[str, str], client_id: str
) -> tuple[platforms.Outcome, str | None]:
    """Exchange the stored refresh token for an access token."""
    response = client.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": secrets["oauth_client_secret"],
            "refresh_token": secrets["oauth_refresh_token"],
        },
    )
    outcome = platforms.classify(response, ["oauth"])
    if response.status_code >= 300:
        return outcome, None
    try:
        return outcome, str(response.json()["access_token"])
    except (ValueError, KeyError, TypeError):
        return platforms.Outcome(response.status_code, error="no access_token in the answer"), None


def ga4_delete(
    client: httpx.Client,
    base_url: str,
    access_token: str,
    property_id: str,
    id_type: str,
    user_id: str,
) -> platforms.Outcome:
    """One User Deletion API request for one identifier."""
    body: dict[str, Any] = {
        "kind": "analytics#userDeletionRequest",
        "id": {"type": id_type, "userId": user_id},
        "propertyId": property_id,
    }
    response = client.post(
        f"{base_url.rstrip('/')}/analytics/v3/userDeletion/userDeletionRequests:upsert",
        json=body,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    return platforms.classify(response, [f"{id_type}:{user_id}"])
