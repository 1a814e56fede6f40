"""Admin routes: every one runs behind the API-key authorizer and `require_principal`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from success_metrics import audit, sync_queue
from success_metrics.errors import NotFoundError, ValidationFailedError
from success_metrics.http import Principal, parse_model
from success_metrics.models.destinations import DestinationRequest
from success_metrics.models.organizations import (
    Organization,
    OrganizationView,
    PrivacySettings,
    PrivacySettingsChange,
    Scope,
)
from success_metrics.routes import match
from success_metrics.settings import get_settings
from success_metrics.stores import destinations, organizations
from success_metrics.sync import delivery_log

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

PRINCIPAL = "principal"
DEST_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def require_principal(app: APIGatewayHttpResolver) -> None:
    """Global middlewares: no admin route runs without an authenticated principal (except a
    route that also takes a link, which authenticates its caller itself), and every one is
    written to the audit log (`success_metrics.audit`)."""

    def middleware(
        resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware
    ) -> Response[Any]:
        event = resolver.current_event
        route = match(event.http_method, event.raw_path)
        if route is None or route.auth != "link_or_api_key":
            caller = Principal.from_event(event)
            resolver.append_context(  # type: ignore[no-untyped-call]
                **{PRINCIPAL: caller, audit.SUBJECT: audit.Subject(caller.org_id, caller.key_id)}
            )
        return next_middleware(resolver)

    app.use(middlewares=[middleware, audit.middleware])


def principal(app: APIGatewayHttpResolver) -> Principal:
    found: Principal = app.context[PRINCIPAL]
    return found


def organization_view(caller: Principal) -> dict[str, Any]:
    org = organizations.get_organization(caller.org_id, fresh=True)
    return OrganizationView(
        org_id=org.org_id,
        name=org.name,
        created_at=org.created_at,
        limits=org.limits,
        retention_days=org.retention_days,
        key_id=caller.key_id,
        scopes=[Scope(s) for s in sorted(caller.scopes)],
        privacy=_privacy(org),
    ).model_dump(mode="json")


def _privacy(org: Organization) -> PrivacySettings:
    return PrivacySettings(
        anonymise_all=org.anonymise_all, anonymise_unknown_country=org.anonymise_unknown_country
    )


def put_settings(caller: Principal, body: Any) -> dict[str, Any]:
    """PUT /v1/organization/settings: change the anonymisation settings (the same operation as
    `smctl org set-privacy`); the settings left out keep their value."""
    caller.require(Scope.CONFIG_WRITE)
    change = parse_model(PrivacySettingsChange, body, "settings")
    org = organizations.set_privacy(
        caller.org_id,
        anonymise_all=change.anonymise_all,
        anonymise_unknown_country=change.anonymise_unknown_country,
    )
    return {"privacy": _privacy(org).model_dump(mode="json")}


def list_audit(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    """GET /v1/audit: the organization's audit records, newest first."""

    caller.require(Scope.AUDIT_READ)
    return audit.list_records(caller.org_id, params)


def list_destinations(caller: Principal) -> dict[str, Any]:
    caller.require(Scope.CONFIG_WRITE)
    found = destinations.list_all(caller.org_id)
    return {"destinations": [destinations.view(d).model_dump(mode="json") for d in found]}


def get_destination(caller: Principal, dest_id: str) -> dict[str, Any]:
    caller.require(Scope.CONFIG_WRITE)
    return destinations.view(destinations.get(caller.org_id, dest_id)).model_dump(mode="json")


def put_destination(caller: Principal, dest_id: str, body: Any) -> dict[str, Any]:
    """Create or replace a destination; a generated webhook signing secret is shown once."""
    caller.require(Scope.CONFIG_WRITE)
    if not DEST_ID.fullmatch(dest_id):
        raise ValidationFailedError(
            "a destination id is 1-63 lower-case letters, digits, '-' or '_', starting alphanumeric"
        )
    request = parse_model(DestinationRequest, body, "destination")
    dest, generated = destinations.put(caller.org_id, dest_id, request)
    answer = destinations.view(dest).model_dump(mode="json")
    if generated:
        answer["signing_secret"] = generated
    return answer


def delete_destination(caller: Principal, dest_id: str) -> None:
    caller.require(Scope.CONFIG_WRITE)
    destinations.delete(caller.org_id, dest_id)


DELIVERY_STATES = (
    "pending", "succeeded", "partial", "failed", "skipped", "retrying", "dead_lettered",
    "withheld",
)  # fmt: skip


def list_deliveries(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    """GET /v1/deliveries?status=…&limit=…&cursor=…: one page of the delivery log, newest
    attempt first, with the cursor (and `next` link) of the following page; or, with
    `event_id`, where one event stands at each destination."""

    caller.require(Scope.CONFIG_WRITE)
    unknown = set(params) - {"status", "event_id", "limit", "cursor", "dest_id", "since", "until"}
    if unknown:
        raise ValidationFailedError(f"unknown query parameters: {', '.join(sorted(unknown))}")
    status = params.get("status")
    if status is not None and status not in DELIVERY_STATES:
        raise ValidationFailedError(f"status is one of {', '.join(DELIVERY_STATES)}")
    if "event_id" in params:
        return {
            "event_id": params["event_id"],
            "destinations": delivery_log.event_status(caller.org_id, params["event_id"]),
        }
    try:
        limit = int(params.get("limit", "100"))
    except ValueError as exc:
        raise ValidationFailedError("limit is a whole number from 1 to 1000") from exc
    if not 1 <= limit <= 1000:
        raise ValidationFailedError("limit is a whole number from 1 to 1000")
    since = moment("since", params["since"]) if params.get("since") else None
    until = moment("until", params["until"], end_of_day=True) if params.get("until") else None
    if since is not None and until is not None and since > until:
        raise ValidationFailedError("since is after until")
    page = delivery_log.list_page(
        caller.org_id,
        status,
        limit,
        params.get("cursor"),
        dest_id=params.get("dest_id") or None,
        since=since,
        until=until,
    )
    following = None
    if page.cursor is not None:
        names = ("status", "dest_id", "since", "until")
        query = {k: params[k] for k in names if params.get(k)} | {"limit": str(limit)}
        following = "/v1/deliveries?" + urlencode({**query, "cursor": page.cursor})
    return {"deliveries": page.summaries, "next_cursor": page.cursor, "next": following}


def moment(name: str, value: str, end_of_day: bool = False) -> int:
    """An ISO 8601 date or time (UTC unless it says otherwise) as epoch seconds; a bare date
    is its first second, or its last with `end_of_day`."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailedError(
            f"{name} is an ISO 8601 date or time, e.g. 2026-06-01 or 2026-06-01T09:30"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 2000 <= parsed.year <= 2200:
        raise ValidationFailedError(f"{name} is a time between the years 2000 and 2200")
    seconds = int(parsed.timestamp())
    if end_of_day and len(text) == 10:
        seconds += 86399
    return seconds


def get_delivery(caller: Principal, delivery_id: str) -> dict[str, Any]:
    """One delivery's summary (without its payload) and every attempt."""
    caller.require(Scope.CONFIG_WRITE)
    found = delivery_log.summary(caller.org_id, delivery_id)
    if found is None:
        raise NotFoundError(f"delivery {delivery_id} does not exist")
    found.pop("payload", None)
    return {**found, "attempts_log": delivery_log.attempts(caller.org_id, delivery_id)}


def retry_delivery(caller: Principal, delivery_id: str) -> dict[str, Any]:
    """POST /v1/deliveries/{id}/retry: queue the delivery again, failed events included."""

    caller.require(Scope.CONFIG_WRITE)
    payload = delivery_log.reopen(caller.org_id, delivery_id)
    sync_queue.send_bodies(get_settings().delivery_queue_url, caller.org_id, [json.dumps(payload)])
    return {"delivery_id": delivery_id, "status": "queued"}
