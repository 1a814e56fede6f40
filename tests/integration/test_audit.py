"""The audit log (SPEC §9, issue 15.1): every admin route, generated from the route table, leaves
one record with who, what, when and how it ended, and none holds a credential; a failed audit
write fails the request and changes nothing; GET /v1/audit filters and pages; smctl changes are
audited too."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from botocore.exceptions import ClientError

from devstack.lambda_events import http_event
from devstack.provision import Stack
from devstack.template import functions, load
from smctl import app as cli
from success_metrics import audit, aws
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.routes import ROUTES, Route
from success_metrics.settings import get_settings
from success_metrics.stores import audit as audit_store
from success_metrics.stores import destinations, items, organizations
from tests.integration.conftest import scan_all
from tests.support import Response, invoke_http
from tests.support.api import ROUTE_QUERIES, authorize

KEYED = [r for r in ROUTES if r.auth in ("api_key", "link_or_api_key")]
CODE = {f.logical_id: Path(f.code_uri).name for f in functions(load())}
SIGNING_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
BODIES: dict[str, Any] = {
    "putDestination": {
        "name": "Partner hook",
        "settings": {
            "kind": "webhook",
            "url": "https://hooks.partner.example/in",
            "signing_secret": SIGNING_SECRET,
        },
    },
    "putOrganizationSettings": {"anonymise_all": True},
    "createExport": {
        "dataset": "events",
        "format": "csv",
        "from": "2026-06-01",
        "to": "2026-06-30",
    },
    "createAccessRequest": {"user_id": "usr_audited"},
    "createErasure": {"user_id": "usr_audited"},
}
QUERIES = ROUTE_QUERIES
VALUES = {
    "dest_id": "dst_audited",
    "delivery_id": "dlv_missing0000000000000000",
    "export_id": "exp_missing",
    "erasure_id": "era_missing",
    "user_id": "usr_audited",
}


def call(
    route: Route,
    authorizer: Any,
    key: str,
    values: dict[str, str] = VALUES,
    query: dict[str, str] | None = None,
    user_agent: str = "audit-test/1.0",
) -> tuple[Response, dict[str, Any]]:
    path = route.path.format(**values)
    context = authorize(authorizer, key)["context"] if route.auth == "api_key" else None
    body = BODIES.get(route.operation_id)
    event = http_event(
        route.method,
        path,
        route_key=f"{route.method} {route.path}",
        path_parameters={p.name: values[p.name] for p in route.path_params} or None,
        headers={
            **({"authorization": f"Bearer {key}"} if key else {}),
            "content-type": "application/json",
            "user-agent": user_agent,
        },
        raw_query=urlencode(query if query is not None else QUERIES.get(route.operation_id, {})),
        body=json.dumps(body).encode() if body is not None else None,
        authorizer=context,
        source_ip="203.0.113.7",
    )
    handler = importlib.import_module(f"{CODE[route.function]}.app").lambda_handler
    return invoke_http(handler, route.function, event), event


def records(stack: Stack, org_id: str) -> list[dict[str, Any]]:
    table = stack.physical["AuditTable"]["Ref"]
    found = [items.deserialize(i) for i in scan_all(table)]
    return sorted((r for r in found if r["org_id"] == org_id), key=lambda r: r["sk"])


class _Throttled:
    """A DynamoDB client whose writes to the audit table are refused, as in an outage."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.real, name)
        if name not in ("put_item", "update_item"):
            return call

        def refused(**kwargs: Any) -> Any:
            if kwargs.get("TableName") == get_settings().audit_table:
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}},
                    name,
                )
            return call(**kwargs)

        return refused


@contextmanager
def audit_table_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(
            audit_store, "aws", SimpleNamespace(dynamodb=lambda: _Throttled(aws.dynamodb()))
        )
        yield


def route_named(operation_id: str) -> Route:
    return next(r for r in ROUTES if r.operation_id == operation_id)


@pytest.mark.parametrize("route", KEYED, ids=lambda r: r.operation_id)
def test_every_admin_route_writes_one_record_without_secrets(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any, route: Route
) -> None:
    organizations.set_limits(org.org_id, exports_per_hour=100, running_exports=20)
    before = time.time()

    answer, event = call(route, authorizer_handler, org.api_key)

    assert answer.status < 500, answer
    found = records(stack, org.org_id)
    assert len(found) == 1, found
    record = found[0]
    assert record["key_id"] == org.key_id
    assert record["method"] == route.method
    assert record["route"] == route.path
    assert record["status"] == answer.status
    assert record["outcome"] == ("succeeded" if answer.status < 400 else "refused")
    assert record["request_id"] == event["requestContext"]["requestId"]
    assert record["source_ip"] == "203.0.113.7"
    assert record["user_agent"] == "audit-test/1.0"
    assert datetime.fromisoformat(record["at"]).timestamp() >= before - 1
    assert abs(record["expires_at"] - (before + 400 * 86400)) < 60
    if route.path_params:
        last = route.path_params[-1].name
        expected = audit.REDACTED if last in audit.PERSONAL_PARAMS else VALUES[last]
        assert record["resource_id"] == expected
    # No credential, secret, token, user id or body in the record.
    text = json.dumps(record)
    secret_part = org.api_key.rsplit(".", 1)[-1]
    for forbidden in (org.api_key, secret_part, SIGNING_SECRET, "usr_audited", "Bearer"):
        assert forbidden not in text
    if route.operation_id == "putDestination":
        assert "signing_secret" not in text
        assert "hooks.partner.example" not in text


def test_a_creation_records_what_it_created(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any
) -> None:
    answer, _ = call(route_named("createExport"), authorizer_handler, org.api_key)

    assert answer.status == 202
    (record,) = records(stack, org.org_id)
    assert record["resource_id"] == answer.json["id"]
    assert record["outcome"] == "succeeded"


def test_a_missing_scope_is_audited_as_refused(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any
) -> None:
    limited = organizations.create_api_key(org.org_id, [Scope.METRICS_READ], "metrics only")

    answer, _ = call(route_named("putDestination"), authorizer_handler, limited.api_key)

    assert answer.status == 403
    (record,) = records(stack, org.org_id)
    assert (record["key_id"], record["status"], record["outcome"]) == (
        limited.key_id,
        403,
        "refused",
    )


def test_an_unauthenticated_request_is_not_attributed_to_anyone(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any
) -> None:
    answer, _ = call(route_named("listDestinations"), authorizer_handler, "smk.forged.key.nope")

    assert answer.status == 401
    assert scan_all(stack.physical["AuditTable"]["Ref"]) == []


def test_a_failed_audit_write_fails_the_request_and_changes_nothing(
    stack: Stack,
    org: CreatedOrganization,
    authorizer_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with audit_table_down(monkeypatch):
        answer, _ = call(route_named("putDestination"), authorizer_handler, org.api_key)

    assert answer.status == 503, answer
    assert answer.headers["content-type"] == "application/problem+json"
    assert "audit" in answer.json["detail"]
    assert answer.headers.get("retry-after") == "5"
    assert destinations.list_all(org.org_id) == []


def test_a_failed_outcome_write_leaves_the_attempt_on_record(
    stack: Stack,
    org: CreatedOrganization,
    authorizer_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = audit._write

    def outcome_fails(entry: audit.Entry, status: int | None) -> None:
        if status is not None:
            raise audit.AuditUnavailableError("the outcome could not be recorded")
        real(entry, status)

    monkeypatch.setattr(audit, "_write", outcome_fails)

    answer, _ = call(route_named("putDestination"), authorizer_handler, org.api_key)

    assert answer.status == 503
    (record,) = records(stack, org.org_id)
    assert record["outcome"] == "pending"
    assert "status" not in record


def _list(authorizer: Any, key: str, **query: str) -> Response:
    answer, _ = call(route_named("listAudit"), authorizer, key, query=query)
    return answer


def test_the_audit_api_filters_and_pages(
    stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization, authorizer_handler: Any
) -> None:
    reader = organizations.create_api_key(org.org_id, [Scope.AUDIT_READ], "auditor")
    for _ in range(3):
        call(route_named("listDestinations"), authorizer_handler, org.api_key)
    call(route_named("getDestination"), authorizer_handler, org.api_key)  # 404
    call(route_named("listDestinations"), authorizer_handler, other_org.api_key)

    everything = _list(authorizer_handler, reader.api_key, limit="100")
    assert everything.status == 200
    got = everything.json["records"]
    # The four requests, newest first (a read is recorded after it ran, so the listing itself
    # is not in its own answer), and nothing of the other organization.
    assert [r["route"] for r in got] == ["/v1/destinations/{dest_id}"] + ["/v1/destinations"] * 3
    assert {r["org_id"] for r in got} == {org.org_id}
    assert got[0]["at"] >= got[-1]["at"]

    by_status = _list(authorizer_handler, reader.api_key, status="4xx").json["records"]
    assert [r["status"] for r in by_status] == [404]
    assert _list(authorizer_handler, reader.api_key, status="404").json["records"] == by_status
    by_route = _list(authorizer_handler, reader.api_key, route="/v1/destinations")
    assert len(by_route.json["records"]) == 3
    by_key = _list(authorizer_handler, reader.api_key, key_id=reader.key_id).json["records"]
    assert {r["route"] for r in by_key} == {"/v1/audit"}  # its own earlier listings
    future = _list(authorizer_handler, reader.api_key, **{"from": "2999-01-01"})
    assert future.json == {"records": [], "next_cursor": None}

    # Pages of two, with filters, until the cursor runs out: the same records, each once.
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = {"limit": "2", "route": "/v1/destinations"}
        if cursor:
            query["cursor"] = cursor
        page = _list(authorizer_handler, reader.api_key, **query).json
        seen.extend(r["request_id"] for r in page["records"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(r["request_id"] for r in by_route.json["records"])


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "many"},
        {"status": "600"},
        {"status": "4x"},
        {"from": "yesterday"},
        {"from": "2026-06-02", "to": "2026-06-01"},
        {"cursor": "not-a-cursor!"},
        {"cursor": "eyJvcmdfaWQiOiAib3JnX290aGVyIn0"},
        {"route": "x" * 300},
        {"colour": "red"},
    ],
)
def test_bad_audit_queries_are_400(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any, query: dict[str, str]
) -> None:
    answer = _list(authorizer_handler, org.api_key, **query)

    assert answer.status == 400, answer
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_download_by_link_is_audited_without_its_token(
    stack: Stack, org: CreatedOrganization, authorizer_handler: Any
) -> None:
    from success_metrics.exports import links
    from success_metrics.exports.models import ExportRequest
    from success_metrics.stores import export_jobs as jobs

    now = time.time()
    job = jobs.create(
        org.org_id,
        org.key_id,
        ExportRequest.model_validate(BODIES["createExport"]),
        jobs.new_export_id(now),
        now,
    )
    token = parse_qs(urlsplit(links.url("https://api.example", job, int(now) + 3600)).query)
    answer, _ = call(
        route_named("downloadExport"),
        authorizer_handler,
        "",
        values={**VALUES, "export_id": job.export_id},
        query={"token": token["token"][0]},
    )

    assert answer.status == 409  # no file yet: refused, and on record
    (record,) = records(stack, org.org_id)
    assert record["key_id"] == "download-link"
    assert record["resource_id"] == job.export_id
    assert record["status"] == 409
    assert token["token"][0] not in json.dumps(record)
    assert token["token"][0].rsplit(".", 1)[-1] not in json.dumps(record)


def smctl(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = cli.main([*argv, "--no-local", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_smctl_changes_are_audited_before_they_happen(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    created = smctl(capsys, "org", "create", "Audited Venue")
    org_id = created["org_id"]
    smctl(capsys, "org", "set-anonymise-all", org_id, "on")
    key = smctl(capsys, "key", "create", org_id, "--scope", "metrics:read")
    smctl(capsys, "key", "revoke", org_id, key["key_id"])
    smctl(capsys, "secret", "rotate", org_id)
    smctl(capsys, "org", "show", org_id)  # a read: not audited

    found = records(stack, org_id)
    assert [r["route"] for r in found] == [
        "smctl org create",
        "smctl org set-anonymise-all",
        "smctl key create",
        "smctl key revoke",
        "smctl secret rotate",
    ]
    assert {r["method"] for r in found} == {"CLI"}
    assert {r["outcome"] for r in found} == {"succeeded"}
    assert all(r["key_id"].startswith("operator:") for r in found)
    assert found[3]["resource_id"] == key["key_id"]
    text = json.dumps(found)
    assert created["api_key"] not in text
    assert created["webhook_secret"] not in text
    assert organizations.get_organization(org_id, fresh=True).anonymise_all is True

    # No audit, no change: the command fails with one line and the setting stays.
    with audit_table_down(monkeypatch):
        code = cli.main(["org", "set-anonymise-all", org_id, "off", "--no-local"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "audit" in err
    assert organizations.get_organization(org_id, fresh=True).anonymise_all is True
