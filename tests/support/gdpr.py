"""The GDPR API in-process, through the authorizer: consent decisions, access requests,
erasures, and the GDPR worker driven from its queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.lambda_events import http_event
from devstack.provision import Stack
from tests.support import invoke_http
from tests.support.api import authorize
from tests.support.exports import run_worker


def decision(user: str, analytics: bool, minutes_ago: int = 30, **extra: Any) -> dict[str, Any]:
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "id": f"evt_consent_{user}_{minutes_ago}_{analytics}",
        "type": "consent.updated",
        "occurred_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user_id": user,
        "user_type": "couple",
        "consent": {"analytics": analytics, **extra},
    }


def call_gdpr(
    authorizer: Any,
    api_key: str,
    method: str,
    path: str,
    route: str,
    *,
    params: dict[str, str] | None = None,
    body: Any = None,
) -> Any:
    """A request to the gdpr_api function, through the authorizer."""
    from gdpr_api import app

    event = http_event(
        method,
        path,
        route_key=f"{method} {route}",
        path_parameters=params,
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
        body=json.dumps(body).encode() if body is not None else None,
        authorizer=authorize(authorizer, api_key)["context"],
    )
    return invoke_http(app.lambda_handler, "GdprApiFunction", event)


def get_consent(authorizer: Any, api_key: str, user: str) -> Any:
    return call_gdpr(
        authorizer,
        api_key,
        "GET",
        f"/v1/gdpr/users/{user}/consent",
        "/v1/gdpr/users/{user_id}/consent",
        params={"user_id": user},
    )


def ask(authorizer: Any, api_key: str, body: Any) -> Any:
    return call_gdpr(
        authorizer,
        api_key,
        "POST",
        "/v1/gdpr/access-requests",
        "/v1/gdpr/access-requests",
        body=body,
    )


def erasure_api(
    authorizer: Any, api_key: str, method: str, erasure_id: str | None = None, body: Any = None
) -> Any:
    if erasure_id is None:
        return call_gdpr(
            authorizer, api_key, method, "/v1/gdpr/erasures", "/v1/gdpr/erasures", body=body
        )
    return call_gdpr(
        authorizer,
        api_key,
        method,
        f"/v1/gdpr/erasures/{erasure_id}",
        "/v1/gdpr/erasures/{erasure_id}",
        params={"erasure_id": erasure_id},
    )


def work(stack: Stack, **options: Any) -> int:
    from gdpr_worker import app

    return run_worker(
        stack, app.lambda_handler, queue="GdprQueue", function="GdprWorkerFunction", **options
    )
