"""The console's handler in-process on moto, each call as ConsoleFunction's own role: sessions,
CSRF, scopes, tenant isolation, escaping and the security headers of every page."""

from __future__ import annotations

import gzip
import json
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
    "/console/deliveries?status=failed&dest_id=hooks&since=2026-06-01&until=2026-06-30",
    "/console/dead-letters",
    "/console/dead-letters?queue=delivery",
    "/console/privacy",
    "/console/settings",
    "/console/live",
    "/console/live?user_id=usr_1&type=user.signed_up",
    "/console/destinations",
    "/console/cohorts?from=2026-01-01&to=2026-06-30",
    "/console/breakdowns?dimension=region&granularity=month&from=2026-01-01&to=2026-03-31",
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


def test_settings_change_the_organizations_own_choices_and_never_show_the_slack_url(
    handler: Any, org: CreatedOrganization, sink: Any
) -> None:
    console = Console(handler)
    console.sign_in(org.api_key)
    margin = console.act("/console/settings", "/console/settings/margin", {"margin": "0.75"})
    assert margin.status == 303, margin.body
    assert "gross+margin+0.75" in margin.location
    refused = console.act("/console/settings", "/console/settings/margin", {"margin": "1.5"})
    assert refused.status == 400
    assert "above 0 and at most 1" in refused.body

    url = f"{sink.url}/services/T1/B1/console-secret-path"
    assert console.act("/console/settings", "/console/settings/slack", {"url": url}).status == 303
    unsafe = console.act(
        "/console/settings", "/console/settings/slack", {"url": "http://169.254.169.254/x"}
    )
    assert unsafe.status == 400, unsafe.body

    made = console.act(
        "/console/settings",
        "/console/settings/alerts",
        {"metric": "revenue", "currency": "gbp", "op": "<", "value": "100"},
    )
    assert made.status == 303, made.body
    assert console.act(
        "/console/settings", "/console/settings/alerts",
        {"metric": "signups", "op": ">=", "value": "5"},
    ).status == 303  # fmt: skip
    unknown = console.act(
        "/console/settings",
        "/console/settings/alerts",
        {"metric": "vibes", "op": "<", "value": "1"},
    )
    assert unknown.status == 400
    assert "vibes is not a metric" in unknown.body
    cleared = console.act(
        "/console/settings", "/console/settings/alerts/clear", {"metric": "signups"}
    )
    assert cleared.status == 303
    privacy = console.act(
        "/console/settings", "/console/settings/privacy", {"anonymise_all": "on"}
    )  # the unknown-country box left unticked: off
    assert privacy.status == 303

    changed = organizations.get_organization(org.org_id, fresh=True)
    assert str(changed.gross_margin) == "0.75"
    assert organizations.slack_webhook(changed) == url
    assert [(a.metric, a.op, str(a.value)) for a in changed.alerts] == [("revenue:GBP", "<", "100")]
    assert changed.anonymise_all is True
    assert changed.anonymise_unknown_country is False
    page = console.get("/console/settings").body
    assert "set (write-only)" in page
    assert "console-secret-path" not in page
    assert "revenue:GBP &lt; 100" in page
    routes = {r["route"] for r in admin_audit(org)}
    assert "POST /console/settings/privacy" in routes
    assert "POST /console/settings/slack" in routes

    reader = Console(handler)
    reader.sign_in(key_of(org, Scope.METRICS_READ))
    token = reader.get("/console/overview").csrf()
    assert reader.post("/console/settings/margin", {"margin": "0.5", "csrf": token}).status == 403
    assert str(organizations.get_organization(org.org_id, fresh=True).gross_margin) == "0.75"


def admin_audit(org: CreatedOrganization) -> list[dict[str, Any]]:
    from success_metrics import audit

    return list(audit.list_records(org.org_id, {"limit": "50"})["records"])


def test_destinations_are_added_and_edited_with_write_only_secrets(
    handler: Any, org: CreatedOrganization, other_org: CreatedOrganization, sink: Any
) -> None:
    from success_metrics.stores import destinations

    console = Console(handler)
    console.sign_in(org.api_key)
    form = console.get("/console/destinations/new?kind=mixpanel")
    assert form.status == 200
    assert 'name="project_token"' in form.body
    assert 'name="region"' in form.body

    made = console.act(
        "/console/destinations/new",
        "/console/destinations",
        {"kind": "webhook", "dest_id": "crm", "name": "CRM", "enabled": "on",
         "url": f"{sink.url}/hooks/crm", "event_types": "user.*, supplier.trial_started"},
    )  # fmt: skip
    assert made.status == 201, made.body
    secret = made.body.split('class="new-secret">', 1)[1].split("<", 1)[0]
    assert secret.startswith("whsec_")
    stored = destinations.get(org.org_id, "crm")
    assert stored.public["event_types"] == ["user.*", "supplier.trial_started"]
    assert destinations.secrets(stored)["signing_secret"] == secret

    edit = console.get("/console/destinations/crm/edit")
    assert secret not in edit.body
    assert "set — leave blank to keep it" in edit.body
    renamed = console.act(
        "/console/destinations/crm/edit",
        "/console/destinations/crm",
        {"name": "CRM (EU)", "url": f"{sink.url}/hooks/crm-eu", "event_types": "*",
         "consent": "marketing"},
    )  # fmt: skip
    assert renamed.status == 303, renamed.body
    edited = destinations.get(org.org_id, "crm")
    assert (edited.name, edited.enabled, edited.public["consent"]) == (
        "CRM (EU)",
        False,
        "marketing",
    )
    assert destinations.secrets(edited)["signing_secret"] == secret  # blank: kept
    assert secret not in console.get("/console/destinations").body

    unsafe = console.act(
        "/console/destinations/new",
        "/console/destinations",
        {"kind": "webhook", "dest_id": "meta", "url": "http://169.254.169.254/latest"},
    )
    assert unsafe.status == 400, unsafe.body
    twice = console.act(
        "/console/destinations/new",
        "/console/destinations",
        {"kind": "webhook", "dest_id": "crm", "url": f"{sink.url}/hooks/x"},
    )
    assert twice.status == 400
    assert "exists already" in twice.body
    missing = console.act(
        "/console/destinations/new?kind=ga4",
        "/console/destinations",
        {"kind": "ga4", "dest_id": "ga", "measurement_id": "G-ABC123"},
    )
    assert missing.status == 400
    assert "api_secret" in missing.body

    theirs = Console(handler)
    theirs.sign_in(other_org.api_key)
    assert theirs.get("/console/destinations/crm/edit").status == 404
    token = theirs.get("/console/destinations").csrf()
    hijack = theirs.post("/console/destinations/crm", {"url": f"{sink.url}/x", "csrf": token})
    assert hijack.status == 404
    assert destinations.get(org.org_id, "crm").name == "CRM (EU)"


def _dead_letter(stack: Stack, org_id: str, queue: str = "sync") -> str:
    """One message of `org_id` failing its last receive in the real consumer."""
    from tests.support.dead_letters import failing_body, receive_until_dead

    receive_until_dead(stack, queue, failing_body(queue, org_id))
    from success_metrics import dead_letters

    (letter,) = [d for d in dead_letters.listing(org_id)["dead_letters"] if d["queue"] == queue]
    return str(letter["message_id"])


def test_dead_letters_are_the_organizations_own_and_replayed_once(
    stack: Stack, handler: Any, org: CreatedOrganization, other_org: CreatedOrganization
) -> None:
    from success_metrics import aws

    message_id = _dead_letter(stack, org.org_id)
    _dead_letter(stack, org.org_id, "gdpr")
    mine, theirs = Console(handler), Console(handler)
    mine.sign_in(org.api_key)
    theirs.sign_in(other_org.api_key)
    page = mine.get("/console/dead-letters")
    assert message_id in page.body
    assert 'data-queue="sync"' in page.body
    assert "Replay all 1" in page.body
    assert "events that are not a list" not in page.body  # the body itself is never shown
    only = mine.get("/console/dead-letters?queue=gdpr")
    assert message_id not in only.body
    empty = theirs.get("/console/dead-letters")
    assert message_id not in empty.body
    assert "No dead letters" in empty.body
    # another organization's session cannot replay it, not even knowing its id
    refused = theirs.act("/console/dead-letters", f"/console/dead-letters/sync/{message_id}/replay")
    assert refused.status == 404, refused.body
    assert "Replay all" not in theirs.get("/console/dead-letters").body
    # a metrics:read key sees no dead letters at all
    reader = Console(handler)
    reader.sign_in(key_of(org, Scope.METRICS_READ))
    assert reader.get("/console/dead-letters").status == 403

    done = mine.act("/console/dead-letters", f"/console/dead-letters/sync/{message_id}/replay")
    assert done.status == 303
    assert "sent+to+the+sync+queue+again" in done.location
    again = mine.act("/console/dead-letters", f"/console/dead-letters/sync/{message_id}/replay")
    assert again.status == 409
    assert "already replayed" in again.body
    sync_url = stack.physical["SyncQueue"]["Ref"]
    got = aws.sqs().receive_message(QueueUrl=sync_url, MessageAttributeNames=["All"])["Messages"]
    assert [m["MessageAttributes"]["replay_of"]["StringValue"] for m in got] == [message_id]
    after = mine.get("/console/dead-letters")
    assert "replayed" in after.body
    assert "Replay all 1" in after.body
    bulk = mine.act("/console/dead-letters", "/console/dead-letters/gdpr/replay")
    assert bulk.status == 303
    assert "1+message" in bulk.location
    _dead_letter(stack, org.org_id, "metrics")  # every tenant queue takes a replay
    metrics = mine.act("/console/dead-letters", "/console/dead-letters/metrics/replay")
    assert metrics.status == 303
    assert "1+message" in metrics.location
    bad = mine.act("/console/dead-letters", "/console/dead-letters/alarms/replay")
    assert bad.status == 400
    assert "queue is one of" in bad.body


def test_a_delivery_shows_its_attempts_and_the_log_filters_by_destination_and_time(
    stack: Stack, handler: Any, org: CreatedOrganization, other_org: CreatedOrganization
) -> None:
    from success_metrics.sync import delivery_log

    for n, (dest_id, at_code) in enumerate([("hooks", 503), ("hooks", 200), ("mixpanel", 200)]):
        for attempt in (1, 2) if at_code == 503 else (1,):
            delivery_log.record_attempt(
                org.org_id, f"dlv_{n}", dest_id=dest_id, kind="webhook", attempt=attempt,
                status="failed" if at_code == 503 else "succeeded", status_code=at_code,
                latency_ms=12.5 * attempt, event_ids=["e1"],
                error="HTTP 503: upstream down" if at_code == 503 else None,
                payload={"org_id": org.org_id, "dest_id": dest_id, "delivery_id": f"dlv_{n}"},
            )  # fmt: skip
    console = Console(handler)
    console.sign_in(org.api_key)
    detail = console.get("/console/deliveries/dlv_0")
    assert detail.status == 200
    assert detail.body.count("data-attempt=") == 2
    assert "HTTP 503: upstream down" in detail.body
    assert "25.0 ms" in detail.body
    assert "Retry" in detail.body  # failed: it can be retried from here
    listing = console.get("/console/deliveries?dest_id=mixpanel")
    assert "dlv_2" in listing.body
    assert "dlv_0" not in listing.body
    assert "dlv_1" in console.get("/console/deliveries?since=2026-01-01").body
    assert "dlv_1" not in console.get("/console/deliveries?until=2025-12-31").body
    wrong = console.get("/console/deliveries?since=yesterday")
    assert wrong.status == 400
    assert "ISO 8601" in wrong.body
    other = Console(handler)
    other.sign_in(other_org.api_key)
    assert other.get("/console/deliveries/dlv_0").status == 404


def test_recovering_everything_failed_since_is_a_job_the_page_follows(
    stack: Stack, handler: Any, org: CreatedOrganization
) -> None:
    from success_metrics.sync import delivery_log

    delivery_log.record_attempt(
        org.org_id, "dlv_x", dest_id="hooks", kind="webhook", attempt=8, status="dead_lettered",
        status_code=503, latency_ms=3.0, event_ids=["e1"], error="HTTP 503",
        payload={"org_id": org.org_id, "dest_id": "hooks", "delivery_id": "dlv_x",
                 "events": [{"id": "e1"}]},
    )  # fmt: skip
    console = Console(handler)
    console.sign_in(org.api_key)
    missing = console.act("/console/deliveries", "/console/deliveries/recover", {"since": ""})
    assert missing.status == 400
    assert "since is required" in missing.body
    unknown = console.act(
        "/console/deliveries", "/console/deliveries/recover",
        {"since": "2026-01-01", "dest_id": "nowhere"},
    )  # fmt: skip
    assert unknown.status == 404
    started = console.act(
        "/console/deliveries", "/console/deliveries/recover", {"since": "2026-01-01"}
    )
    assert started.status == 303
    assert "recovery+rec_" in started.location
    page = console.get("/console/deliveries")
    assert "data-recovery=" in page.body
    assert ">queued<" in page.body
    assert '<meta http-equiv="refresh"' in page.body  # followed while it runs
    twice = console.act(
        "/console/deliveries", "/console/deliveries/recover", {"since": "2026-02-01"}
    )
    assert twice.status == 409
    assert "still running" in twice.body
    # the delivery worker runs the job: the dead-lettered delivery is queued again
    from platform_sync import app

    from devstack.lambda_events import LambdaContext, sqs_record
    from success_metrics import aws

    url, arn = stack.physical["DeliveryQueue"]["Ref"], stack.physical["DeliveryQueue"]["Arn"]
    (job,) = aws.sqs().receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    record = sqs_record(arn, job["MessageId"], job["ReceiptHandle"], job["Body"],
                        attributes=job["Attributes"])  # fmt: skip
    answer = app.lambda_handler({"Records": [record]}, LambdaContext("PlatformSyncFunction", 120))
    assert answer == {"batchItemFailures": []}
    page = console.get("/console/deliveries")
    assert ">done<" in page.body
    assert '<meta http-equiv="refresh"' not in page.body
    assert '<td class="num found">1</td>' in page.body
    assert '<td class="num queued">1</td>' in page.body
    assert delivery_log.summary(org.org_id, "dlv_x")["status"] == "pending"  # type: ignore[index]
    queued = aws.sqs().receive_message(QueueUrl=url)["Messages"]
    assert [json.loads(m["Body"])["delivery_id"] for m in queued] == ["dlv_x"]
