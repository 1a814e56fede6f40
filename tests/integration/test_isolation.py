"""The tenant-isolation matrix, generated from the route table: a route added to the API is in it
without anyone editing this file.

For every route behind an API key:
- organization A's key on organization B's resource answers 404 (a route about a collection
  answers nothing of B's) and B's data is byte-for-byte unchanged afterwards;
- a key of A without the route's scope answers 403, before any look-up;
- a revoked key answers 401.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.lambda_events import http_event
from devstack.provision import Stack
from devstack.template import functions, load
from success_metrics import audit, dead_letters
from success_metrics.console.routes import ROUTES as CONSOLE_ROUTES
from success_metrics.exports.models import ExportRequest
from success_metrics.gdpr import erasure
from success_metrics.models.destinations import DestinationRequest
from success_metrics.models.organizations import ALL_SCOPES, CreatedOrganization
from success_metrics.routes import ROUTES, Route
from success_metrics.stores import consent, destinations, organizations
from success_metrics.stores import export_jobs as jobs
from success_metrics.sync import delivery_log
from tests.integration.conftest import scan_all
from tests.support import Response, invoke_http
from tests.support.api import ROUTE_QUERIES, authorize
from tests.support.console import Console, Page
from tests.support.dead_letters import failing_body, receive_until_dead
from tests.support.gdpr import decision

KEYED = [r for r in ROUTES if r.auth in ("api_key", "link_or_api_key")]
CODE = {f.logical_id: Path(f.code_uri).name for f in functions(load())}
BODIES: dict[str, Any] = {
    "putDestination": {
        "name": "A's GA4",
        "settings": {"kind": "ga4", "measurement_id": "G-ISOL0001", "api_secret": "s"},
    },
    "createExport": {
        "dataset": "events",
        "format": "csv",
        "from": "2026-06-01",
        "to": "2026-06-30",
    },
    "createAccessRequest": {"user_id": "usr_b"},
    "createErasure": {"user_id": "usr_b"},
    "putOrganizationSettings": {"anonymise_all": True},
}
QUERIES = ROUTE_QUERIES


def call(route: Route, authorizer: Any, key: str, values: dict[str, str]) -> Response:
    """The route as API Gateway calls it: the authorizer (when the route has one), then the
    function."""
    path = route.path.format(**values)
    context = authorize(authorizer, key)["context"] if route.auth == "api_key" else None
    body = BODIES.get(route.operation_id)
    query = QUERIES.get(route.operation_id, {})
    event = http_event(
        route.method,
        path,
        route_key=f"{route.method} {route.path}",
        path_parameters={p.name: values[p.name] for p in route.path_params} or None,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        raw_query=urlencode(query),
        body=json.dumps(body).encode() if body is not None else None,
        authorizer=context,
    )
    handler = importlib.import_module(f"{CODE[route.function]}.app").lambda_handler
    return invoke_http(handler, route.function, event)


@pytest.fixture
def world(stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization) -> dict[str, Any]:
    """Organization B (`other_org`) with one resource of every kind; A is `org`."""
    b = other_org.org_id
    now = time.time()
    destinations.put(
        b,
        "dst_b",
        DestinationRequest.model_validate(
            {
                "name": "B's GA4",
                "settings": {"kind": "ga4", "measurement_id": "G-BBBB0001", "api_secret": "x"},
            }
        ),
    )
    delivery_log.record_attempt(
        b,
        "dlv_b0000000000000000000000",
        dest_id="dst_b",
        kind="ga4",
        attempt=1,
        status="failed",
        status_code=400,
        latency_ms=1.0,
        event_ids=["evt_b1"],
        error="400: bad",
        failed={"evt_b1": "HTTP 400"},
        payload={"org_id": b, "dest_id": "dst_b", "kind": "ga4", "events": []},
    )
    export = jobs.create(
        b,
        other_org.key_id,
        ExportRequest.model_validate(BODIES["createExport"]),
        jobs.new_export_id(now),
        now,
    )
    consent.record_decisions(b, [decision("usr_b", True)], 730, now)
    with audit.cli_operation(b, "org set-margin"):  # B's audit log has a record
        pass
    job, _ = erasure.start(organizations.get_organization(b), other_org.key_id, "usr_b", now)
    receive_until_dead(stack, "sync", failing_body("sync", b))  # B has a dead letter
    (letter,) = dead_letters.listing(b)["dead_letters"]
    return {
        "org_id": b,
        "values": {
            "dest_id": "dst_b",
            "delivery_id": "dlv_b0000000000000000000000",
            "export_id": export.export_id,
            "erasure_id": job.erasure_id,
            "user_id": "usr_b",
            "queue": "sync",
            "message_id": letter["message_id"],
        },
    }


def b_items(stack: Stack, org_id: str) -> list[str]:
    """Every stored item that belongs to B, as text, sorted (no timestamps are rewritten by a
    mere read, so any difference is a change)."""
    found = []
    for logical, resource in stack.template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        for item in scan_all(stack.physical[logical]["Ref"]):
            text = json.dumps(item, sort_keys=True, default=repr)  # binary attributes too
            if org_id in text:
                found.append(f"{logical}:{text}")
    return sorted(found)


@pytest.mark.parametrize("route", KEYED, ids=lambda r: f"{r.method} {r.path}")
def test_a_key_never_reaches_another_organizations_data(
    stack: Stack,
    org: CreatedOrganization,
    authorizer_handler: Any,
    world: dict[str, Any],
    route: Route,
) -> None:
    organizations.set_limits(org.org_id, exports_per_hour=100, running_exports=20)
    before = b_items(stack, world["org_id"])

    answer = call(route, authorizer_handler, org.api_key, world["values"])

    if route.path_params and route.method != "PUT":
        assert answer.status == 404, answer
        assert answer.headers["content-type"] == "application/problem+json"
    else:  # a collection, a creation, or an upsert: it acts in A's organization only
        assert answer.status < 400, answer
    text = str(answer.raw.get("body") or "")
    assert world["org_id"] not in text
    if route.operation_id != "putDestination":  # A may name its own destination "dst_b"
        for value in ("dst_b", world["values"]["export_id"], world["values"]["erasure_id"]):
            assert value not in text or answer.status == 404
    assert b_items(stack, world["org_id"]) == before


@pytest.mark.parametrize("route", [r for r in KEYED if r.scope], ids=lambda r: r.operation_id)
def test_a_key_without_the_routes_scope_is_refused_first(
    stack: Stack,
    org: CreatedOrganization,
    authorizer_handler: Any,
    world: dict[str, Any],
    route: Route,
) -> None:
    assert route.scope is not None
    others = [s for s in ALL_SCOPES if s != route.scope]
    limited = organizations.create_api_key(org.org_id, others, "all but one scope")
    before = b_items(stack, world["org_id"])

    answer = call(route, authorizer_handler, limited.api_key, world["values"])

    assert answer.status == 403, answer
    assert route.scope.value in answer.json["detail"]
    assert b_items(stack, world["org_id"]) == before


@pytest.mark.parametrize("route", KEYED, ids=lambda r: r.operation_id)
def test_a_revoked_key_is_refused(
    stack: Stack,
    org: CreatedOrganization,
    authorizer_handler: Any,
    world: dict[str, Any],
    route: Route,
) -> None:
    key = organizations.create_api_key(org.org_id, list(ALL_SCOPES), "to revoke")
    organizations.revoke_api_key(org.org_id, key.key_id)

    answer = call(route, authorizer_handler, key.api_key, world["values"])

    assert answer.status == 401, answer
    assert answer.headers["content-type"] == "application/problem+json"


def test_the_matrix_covers_every_keyed_route_and_resource_kind() -> None:
    assert {r.resource for r in KEYED} >= {
        "organization",
        "destination",
        "delivery",
        "metrics",
        "export",
        "consent",
        "erasure",
    }
    assert len(KEYED) == len(ROUTES) - 2  # all but signed ingestion and the public document


# -- the console's routes: the same matrix for a session --------------------------------------

PUBLIC_CONSOLE = {
    "/console", "/console/", "/console/sign-in", "/console/sign-in/link", "/console/sign-out",
    "/console/static/{name}",
}  # fmt: skip
CONSOLE = sorted(r for r in CONSOLE_ROUTES if r[1] not in PUBLIC_CONSOLE)
CONSOLE_FORMS: dict[str, dict[str, str]] = {
    "/console/exports": BODIES["createExport"],
    "/console/destinations": {
        "kind": "webhook", "dest_id": "dst_a", "url": "https://hooks.example.com/a",
    },
    "/console/destinations/{dest_id}": {"url": "https://hooks.example.com/a"},
    "/console/destinations/{dest_id}/enabled": {"enabled": "false"},
    "/console/privacy/erasures": {"subject": "usr_b"},
    "/console/deliveries/recover": {"since": "2026-01-01"},
    "/console/privacy/access-requests": {"user_id": "usr_b"},
    "/console/settings/keys": {"scopes": "metrics:read"},
    "/console/settings/margin": {"margin": "0.5"},
    "/console/settings/slack": {"remove": "true"},
    "/console/settings/alerts": {"metric": "signups", "op": "<", "value": "1"},
    "/console/settings/privacy": {"anonymise_all": "on"},
}  # fmt: skip
# routes whose parameter names a kind, not a resource: they act in A's organization
CONSOLE_KINDS = {"/console/dead-letters/{queue}/replay"}
CONSOLE_QUERIES: dict[str, str] = {
    "/console/live": "user_id=usr_b",
    "/console/privacy": "user_id=usr_b",
    "/console/deliveries": "event_id=evt_b1",
    "/console/metrics.csv": "metric=signups&from=2026-06-01&to=2026-06-30",
}


def console_call(console: Console, method: str, pattern: str, values: dict[str, str]) -> Page:
    path = pattern.format(**values)
    query = CONSOLE_QUERIES.get(pattern, "")
    target = f"{path}?{query}" if query else path
    if method == "GET":
        return console.get(target)
    token = console.get("/console/overview").csrf()
    return console.post(target, {**CONSOLE_FORMS.get(pattern, {}), "csrf": token})


@pytest.mark.parametrize(("method", "pattern"), CONSOLE, ids=str)
def test_a_console_session_never_reaches_another_organizations_data(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    world: dict[str, Any],
    method: str,
    pattern: str,
) -> None:
    from console import app

    organizations.set_limits(org.org_id, exports_per_hour=100, running_exports=20)
    values = {**world["values"], "key_id": other_org.key_id}
    before = b_items(stack, world["org_id"])
    console = Console(app.lambda_handler)
    console.sign_in(org.api_key)

    answer = console_call(console, method, pattern, values)

    if "{" in pattern and pattern not in CONSOLE_KINDS:
        assert answer.status == 404, (answer.status, answer.body[:300])
    else:  # a page or a creation: in A's organization only
        assert answer.status < 400, (answer.status, answer.body[:300])
    assert world["org_id"] not in answer.body
    for value in (world["values"]["export_id"], world["values"]["erasure_id"], "dlv_b0"):
        assert value not in answer.body or answer.status == 404
    assert b_items(stack, world["org_id"]) == before


@pytest.mark.parametrize(("method", "pattern"), CONSOLE, ids=str)
def test_a_console_session_of_a_revoked_key_goes_back_to_sign_in(
    stack: Stack, org: CreatedOrganization, world: dict[str, Any], method: str, pattern: str
) -> None:
    from console import app

    key = organizations.create_api_key(org.org_id, list(ALL_SCOPES), "to revoke")
    console = Console(app.lambda_handler)
    console.sign_in(key.api_key)
    token = console.get("/console/overview").csrf()
    organizations.revoke_api_key(org.org_id, key.key_id)
    organizations.clear_cache()  # the revocation as another function sees it a minute later
    path = pattern.format(**{**world["values"], "key_id": key.key_id})
    if method == "GET":
        answer = console.get(path)
    else:
        answer = console.post(path, {**CONSOLE_FORMS.get(pattern, {}), "csrf": token})

    if pattern in ("/console/metrics.csv",):
        assert answer.status == 401
    else:
        assert answer.status == 303, (answer.status, answer.body[:300])
        assert answer.location.startswith("/console/sign-in?reason=")
