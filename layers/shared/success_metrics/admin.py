"""Admin routes: every one runs behind the API-key authorizer and `require_principal`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from success_metrics import destinations, organizations
from success_metrics.errors import ValidationFailedError
from success_metrics.http import Principal, parse_model
from success_metrics.models.destinations import DestinationRequest
from success_metrics.models.organizations import OrganizationView, Scope

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

PRINCIPAL = "principal"
DEST_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def require_principal(app: APIGatewayHttpResolver) -> None:
    """A global middleware: no admin route runs without an authenticated principal."""

    def middleware(
        resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware
    ) -> Response[Any]:
        resolver.append_context(  # type: ignore[no-untyped-call]
            **{PRINCIPAL: Principal.from_event(resolver.current_event)}
        )
        return next_middleware(resolver)

    app.use(middlewares=[middleware])


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
    ).model_dump(mode="json")


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
