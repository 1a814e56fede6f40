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

`erase_from` is the erasure's step for one platform: for each destination of that kind, the
subject's ids are sent, resuming from `PlatformDeletion.sent_ids`; a destination without the
credentials its deletion API needs ends `not_configured`, one answered with a final error
`failed`, and a retryable failure raises `RetryLater` (the job is delivered again) until the last
attempt, where it counts as final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from success_metrics.gdpr.job import FINAL, PlatformDeletion, Subject, SystemProgress, SystemStatus
from success_metrics.models.destinations import Destination
from success_metrics.settings import Settings
from success_metrics.stores import destinations
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


# ------------------------------------------------------------------ the erasure's platform step

# One request through the delivery path's retries and circuit breaker (`sync.worker.guarded`).
Guard = Callable[[Destination, Callable[[], platforms.Outcome]], platforms.Outcome]


class RetryLater(Exception):
    """A platform is failing in a retryable way: let SQS deliver the job again later."""


class Attempts:
    """How the erasure makes a deletion request and judges the answer."""

    def __init__(
        self, client: httpx.Client, guard: Guard, settings: Settings, last_attempt: bool
    ) -> None:
        self.client = client
        self.guard = guard
        self.settings = settings
        self.last_attempt = last_attempt

    def make(
        self,
        dest: Destination,
        progress: PlatformDeletion,
        send: Callable[[], platforms.Outcome],
    ) -> bool:
        """Send one request; False when the destination is finished (failed)."""
        outcome = self.guard(dest, send)
        if outcome.retryable:
            if not self.last_attempt:
                progress.error = outcome.error
                raise RetryLater(outcome.error or "retryable failure")
            outcome = platforms.Outcome(outcome.status, error=outcome.error)
        if outcome.error:
            progress.status, progress.error = SystemStatus.FAILED, outcome.error
            return False
        return True


def erase_from(
    kind: str,
    org_id: str,
    subject: Subject,
    system: SystemProgress,
    attempts: Attempts,
    save: Callable[[], None],
) -> SystemStatus:
    """Ask every `kind` destination ("mixpanel" or "ga4") of the organization to delete the
    subject; `save` is called after each destination. Returns the system's status."""
    erase = _mixpanel if kind == "mixpanel" else _ga4
    for dest in (d for d in destinations.list_all(org_id) if d.kind == kind):
        progress = system.detail.setdefault(dest.dest_id, PlatformDeletion())
        if progress.status in FINAL:
            continue
        erase(dest, subject, progress, attempts)
        save()
    statuses = {d.status for d in system.detail.values()}
    status = SystemStatus.DONE
    if SystemStatus.FAILED in statuses:
        status = SystemStatus.FAILED
    elif SystemStatus.NOT_CONFIGURED in statuses:
        status = SystemStatus.NOT_CONFIGURED
    system.count = sum(d.requests for d in system.detail.values())
    errors = [f"{dest}: {d.error}" for dest, d in system.detail.items() if d.error]
    system.error = "; ".join(errors) or None
    return status


def _mixpanel(
    dest: Destination, subject: Subject, progress: PlatformDeletion, attempts: Attempts
) -> None:
    values = destinations.secrets(dest)
    if not values.get("gdpr_token"):
        progress.status = SystemStatus.NOT_CONFIGURED
        progress.error = (
            "no gdpr_token: set the project's GDPR OAuth token on the destination, "
            "or delete the user in Mixpanel's privacy settings"
        )
        return
    settings = attempts.settings
    base = (
        settings.mixpanel_eu_gdpr_api_url
        if dest.public.get("region") == "eu"
        else settings.mixpanel_gdpr_api_url
    )
    ids = sorted(subject.mixpanel_ids)
    for ids_batch in id_batches(ids[progress.sent_ids :]):
        answer: dict[str, str | None] = {}

        def send(
            ids_batch: list[str] = ids_batch, answer: dict[str, str | None] = answer
        ) -> platforms.Outcome:
            outcome, answer["task"] = mixpanel_delete(
                attempts.client, base, values["project_token"], values["gdpr_token"], ids_batch
            )
            return outcome

        if not attempts.make(dest, progress, send):
            return
        if answer.get("task"):
            progress.task_ids.append(str(answer["task"]))
        progress.sent_ids += len(ids_batch)
        progress.requests += 1
    progress.status, progress.error = SystemStatus.DONE, None


def _ga4(
    dest: Destination, subject: Subject, progress: PlatformDeletion, attempts: Attempts
) -> None:
    values = destinations.secrets(dest)
    property_id = dest.public.get("property_id")
    client_id = dest.public.get("oauth_client_id")
    if not (
        property_id
        and client_id
        and values.get("oauth_client_secret")
        and values.get("oauth_refresh_token")
    ):
        progress.status = SystemStatus.NOT_CONFIGURED
        progress.error = (
            "set property_id and the OAuth client and refresh token (scope "
            "analytics.user.deletion) on the destination, or delete the user in GA4"
        )
        return
    settings = attempts.settings
    token: dict[str, str | None] = {}

    def fetch_token() -> platforms.Outcome:
        outcome, token["value"] = google_access_token(
            attempts.client, settings.google_oauth_token_url, values, str(client_id)
        )
        return outcome

    if not attempts.make(dest, progress, fetch_token):
        return
    access = str(token["value"])
    wanted = [("USER_ID", u) for u in sorted(subject.ga4_user_ids)] + [
        ("CLIENT_ID", c) for c in sorted(subject.ga4_client_ids)
    ]
    for id_type, value in wanted[progress.sent_ids :]:

        def send(id_type: str = id_type, value: str = value) -> platforms.Outcome:
            return ga4_delete(
                attempts.client,
                settings.ga4_user_deletion_api_url,
                access,
                str(property_id),
                id_type,
                value,
            )

        if not attempts.make(dest, progress, send):
            return
        progress.sent_ids += 1
        progress.requests += 1
    progress.status, progress.error = SystemStatus.DONE, None
