"""The console's handler in-process on moto, each call as ConsoleFunction's own role: sessions,
CSRF, scopes, tenant isolation, escaping and the security headers of every page."""

from __future__ import annotations

import gzip
import time
from typing import Any

import pytest

from devstack.provision import Stack
from success_metrics.console import sessions
from success_metrics.errors import UnauthenticatedError
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import console_links, organizations
from tests.support.console import Console

PAGES = (
    "/console/overview?from=2026-05-01&to=2026-05-31",
    "/console/metrics?metric=mrr_end&granularity=month&from=2026-01-01&to=2026-06-30",
    "/console/exports",
    "/console/deliveries",
    "/console/privacy",
    "/console/settings",
    "/console/live",
    "/console/live?user_id=usr_1&type=user.signed_up",
    "/console/destinations",
    "/console/cohorts?from=2026-01-01&to=2026-06-30",
    "/console/sign-in",
)


@pytest.fixture
def handler(stack: Stack) -> Any:
    from console import app

    return app.lambda_handler


def key_of(org: CreatedOrganization, *scopes: Scope) -> str:
    if not scopes:
        return org.api_key
    return organizations.create_api_key(org.org_id, list(scopes)).api_key


def test_every_page_has_the_security_headers_and_weighs_little(
    handler: Any, org: CreatedOrganization
) -> None:
    console = Console(handler)
    console.sign_in(org.api_key)
    for path in PAGES:
        page = console.get(path)
        assert page.status == 200, (path, page.body[:500])
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "'unsafe-inline'" not in policy
        assert "'unsafe-eval'" not in policy
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        # At most 150 KB compressed (the issue's budget), charts included.
        assert len(gzip.compress(page.body.encode())) < 150 * 1024, path
        assert org.api_key not in page.body  # the key is never rendered


def test_the_session_cookie_is_httponly_strict_and_secure_on_https(
    handler: Any, org: CreatedOrganization
) -> None:
    page = Console(handler).sign_in(org.api_key)
    [cookie] = page.cookies
    assert cookie.startswith("sm_console=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/console", "Max-Age=43200"):
        assert attribute in cookie


def test_a_forged_expired_or_revoked_session_is_sent_to_sign_in(
    handler: Any, org: CreatedOrganization, other_org: CreatedOrganization
) -> None:
    key = organizations.create_api_key(org.org_id, [Scope.METRICS_READ])
    console = Console(handler)
    console.sign_in(key.api_key)
    good = console.cookie
    assert console.get("/console/overview").status == 200

    # Another organization's id in a cookie signed for this one.
    forged = Console(handler, good.replace(org.org_id, other_org.org_id, 1))
    assert forged.get("/console/overview").status == 303
    with pytest.raises(UnauthenticatedError, match="expired"):
        sessions.verify(good, now=time.time() + sessions.MAX_AGE + 1)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert Console(handler, tampered).get("/console/overview").status == 303

    organizations.revoke_api_key(org.org_id, key.key_id)
    page = console.get("/console/overview")
    assert page.status == 303
    assert "revoked" in page.location


def test_a_state_change_needs_the_sessions_csrf_token_and_this_site(
    handler: Any, org: CreatedOrganization, other_org: CreatedOrganization
) -> None:
    console = Console(handler)
    console.sign_in(org.api_key)
    other = Console(handler)
    other.sign_in(other_org.api_key)
    form = {"scopes": "metrics:read"}

    assert console.post("/console/settings/keys", form).status == 403  # no token
    foreign = other.get("/console/settings").csrf()
    assert console.post("/console/settings/keys", {**form, "csrf": foreign}).status == 403
    token = console.get("/console/settings").csrf()
    cross = console.post(
        "/console/settings/keys", {**form, "csrf": token}, **{"sec-fetch-site": "cross-site"}
    )
    assert cross.status == 403
    made = console.post("/console/settings/keys", {**form, "csrf": token})
    assert made.status == 201
    assert "smk." in made.body  # shown once, on this answer


def test_scopes_decide_what_a_session_sees_and_may_do(
    handler: Any, org: CreatedOrganization
) -> None:
    console = Console(handler)
    console.sign_in(key_of(org, Scope.METRICS_READ))
    assert console.get("/console/overview").status == 200
    refused = console.get("/console/exports")
    assert refused.status == 403
    assert "exports:read" in refused.body
    token = console.get("/console/overview").csrf()  # the sign-out form's token
    created = console.post(
        "/console/exports",
        {"dataset": "events", "format": "csv", "from": "2026-05-01", "to": "2026-05-31",
         "csrf": token},
    )  # fmt: skip
    assert created.status == 403
    # A key can only hand out scopes it has.
    assert (
        console.post("/console/settings/keys", {"scopes": "exports:write", "csrf": token}).status
        == 403
    )


def test_a_session_never_reaches_another_organizations_records(
    handler: Any, org: CreatedOrganization, other_org: CreatedOrganization
) -> None:
    theirs = Console(handler)
    theirs.sign_in(other_org.api_key)
    made = theirs.act(
        "/console/exports",
        "/console/exports",
        {"dataset": "events", "format": "csv", "from": "2026-05-01", "to": "2026-05-02"},
    )
    assert made.status == 303, made.body
    export_id = made.location.split("export+", 1)[1].split("+", 1)[0]

    mine = Console(handler)
    mine.sign_in(org.api_key)
    assert export_id not in mine.get("/console/exports").body
    assert mine.act("/console/exports", f"/console/exports/{export_id}/cancel").status == 404
    assert mine.get(f"/console/exports/{export_id}/download").status == 404
    other_key = organizations.list_api_keys(other_org.org_id)[0].key_id
    assert mine.act("/console/settings", f"/console/settings/keys/{other_key}/revoke").status == 404
    assert organizations.get_api_key(other_org.org_id, other_key).revoked_at is None  # type: ignore[union-attr]


def test_attacker_controlled_text_is_escaped(handler: Any, org: CreatedOrganization) -> None:
    payload = "<script>alert(1)</script><img src=x onerror=alert(1)>"
    organizations.create_api_key(org.org_id, [Scope.METRICS_READ], payload)
    console = Console(handler)
    console.sign_in(org.api_key)
    for path in ("/console/settings", f"/console/privacy?user_id={payload}",
                 f"/console/sign-in?reason={payload}", f"/console/metrics?metric={payload}"):  # fmt: skip
        body = console.get(path).body
        assert "<script>alert" not in body, path
        assert "<img src=x" not in body, path


def test_a_sign_in_link_works_once_and_not_after_15_minutes(
    handler: Any, org: CreatedOrganization
) -> None:
    token, expires = console_links.create(org.org_id, org.key_id)
    assert expires - time.time() == pytest.approx(15 * 60, abs=5)
    form = Console(handler).get(f"/console/sign-in/link?token={token}")
    assert form.status == 200
    assert token in form.body  # the GET only shows the button: a link scanner uses nothing
    first = Console(handler)
    assert first.post("/console/sign-in/link", {"token": token}).status == 303
    assert first.get("/console/overview").status == 200
    assert Console(handler).post("/console/sign-in/link", {"token": token}).status == 401

    late, _ = console_links.create(org.org_id, org.key_id, now=time.time() - 15 * 60 - 1)
    assert Console(handler).post("/console/sign-in/link", {"token": late}).status == 401


def test_an_access_request_from_the_privacy_page_queues_a_json_export(
    handler: Any, org: CreatedOrganization
) -> None:
    console = Console(handler)
    console.sign_in(org.api_key)
    made = console.act(
        "/console/privacy",
        "/console/privacy/access-requests",
        {"user_id": "usr_ana", "notify": "dpo@example.com"},
    )
    assert made.status == 303, made.body
    assert "emailed" in made.location
    listed = console.get("/console/exports").body
    assert "access" in listed
    refused = console.act("/console/privacy", "/console/privacy/access-requests", {"user_id": ""})
    assert refused.status == 400
