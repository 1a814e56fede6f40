"""Admin routes: every one runs behind the API-key authorizer and `require_principal`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from success_metrics import organizations
from success_metrics.http import Principal
from success_metrics.models.organizations import OrganizationView, Scope

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

PRINCIPAL = "principal"


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
