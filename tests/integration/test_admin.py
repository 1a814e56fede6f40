"""The API-key authorizer and the first admin route, GET /v1/organization."""

from __future__ import annotations

from typing import Any

from devstack.lambda_events import http_event
from devstack.provision import Stack
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import organizations
from tests.support import invoke_http
from tests.support.api import authorize, get_organization


def test_valid_key_reads_its_own_organization(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    admin_handler: Any,
    authorizer_handler: Any,
) -> None:
    response = get_organization(admin_handler, authorizer_handler, org.api_key)

    assert response.status == 200
    assert response.json["org_id"] == org.org_id
    assert response.json["name"] == "Bloom & Veil Weddings"
    assert response.json["limits"] == {
        "requests_per_hour": 100,
        "events_per_hour": 1000,
        "exports_per_hour": 10,
        "running_exports": 3,
        "erasures_per_hour": 100,
    }
    assert response.json["retention_days"] == 730
    assert set(response.json["scopes"]) == {s.value for s in Scope}
    assert "webhook_secrets" not in response.json


def test_authorizer_takes_the_organization_from_the_key_record(
    stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization, authorizer_handler: Any
) -> None:
    # A key whose org part is rewritten to another organization does not authenticate there.
    _, _, key_id, secret = org.api_key.split(".")
    forged = f"smk.{other_org.org_id}.{key_id}.{secret}"

    assert authorize(authorizer_handler, forged)["context"]["authenticated"] is False
    context = authorize(authorizer_handler, org.api_key)["context"]
    assert context["org_id"] == org.org_id


def test_revoked_key_is_401(
    stack: Stack, org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any
) -> None:
    organizations.revoke_api_key(org.org_id, org.key_id)

    response = get_organization(admin_handler, authorizer_handler, org.api_key)

    assert response.status == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "revoked" in response.json["detail"]


def test_missing_malformed_or_wrong_keys_are_401(
    stack: Stack, org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any
) -> None:
    for key in (None, "nonsense", org.api_key[:-2] + "xx", "smk.a.b.c.d"):
        response = get_organization(admin_handler, authorizer_handler, key)
        assert response.status == 401, key
        assert response.json["type"].endswith("/unauthenticated")


def test_route_refuses_a_request_without_authorizer_context(
    stack: Stack, admin_handler: Any
) -> None:
    event = http_event("GET", "/v1/organization", route_key="GET /v1/organization")

    response = invoke_http(admin_handler, "AdminApiFunction", event)

    assert response.status == 401


def test_a_scoped_key_sees_its_scopes(
    stack: Stack, org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any
) -> None:
    created = organizations.create_api_key(org.org_id, [Scope.METRICS_READ], "dashboards")

    response = get_organization(admin_handler, authorizer_handler, created.api_key)

    assert response.status == 200
    assert response.json["scopes"] == ["metrics:read"]
    assert response.json["key_id"] == created.key_id
