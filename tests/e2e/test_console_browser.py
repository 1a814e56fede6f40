"""The console in a real browser: Debian's chromium driven by Playwright against the running
local stack. Screenshots of every page at 360 and 1440 px go to .local/screenshots/."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

from devstack.seed import post_signed
from tests.e2e.conftest import ROOT, RunningStack, demo_season_metrics
from tests.support.local_stack import aws, sink_requests, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / ".local" / "screenshots"
# Flags for a closed network: without them chromium keeps calling Google's hosts.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SEASON = "from=2026-05-01&to=2026-10-31"
PAGES = {
    "overview": f"/console/overview?{SEASON}",
    "exports": "/console/exports",
    "deliveries": "/console/deliveries",
    "dead-letters": "/console/dead-letters",
    "privacy": "/console/privacy",
    "settings": "/console/settings",
    "live": "/console/live",
    "destinations": "/console/destinations",
    "destination-new": "/console/destinations/new?kind=mixpanel",
    "breakdowns": "/console/breakdowns?dimension=country&from=2025-11-01&to=2026-10-31",
    "cohorts": "/console/cohorts?from=2026-01-01&to=2026-10-31",
    "metrics": "/console/metrics?metric=signups&granularity=week&from=2026-05-01&to=2026-10-31",
    "sign-in": "/console/sign-in",
}
XSS = '"><script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():  # never skipped: make installs it (apt-get chromium)
        raise AssertionError(f"no chromium at {CHROMIUM}: run `make test` (it installs it)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def new_page(
    browser: Browser,
    width: int = 1440,
    javascript: bool = True,
    zone: str = "Europe/London",
    locale: str = "en-GB",
) -> tuple[Page, list[str]]:
    context = browser.new_context(
        viewport={"width": width, "height": 740 if width <= 400 else 900},
        java_script_enabled=javascript,
        timezone_id=zone,
        locale=locale,
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def sign_in(page: Page, stack: RunningStack, key: str | None = None) -> None:
    page.goto(stack.api_url + "/console/")
    page.fill("#api_key", key or stack.org["api_key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/console/overview")


def settled_totals(stack: RunningStack, http: httpx.Client) -> dict[str, Any]:
    """The season's totals (by day, as the Overview asks) once every demo event is counted."""
    demo_season_metrics(stack, http, stack.org["api_key"])
    url = f"{stack.api_url}/v1/metrics?{SEASON}&granularity=day"
    answer = http.get(url, headers={"Authorization": f"Bearer {stack.org['api_key']}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["totals"])


def tile(page: Page, label: str) -> str:
    return page.locator(f'[data-metric="{label}"]').inner_text()


def test_sign_in_by_key_and_the_overview_equals_the_api(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    page, errors = new_page(browser)
    sign_in(page, stack)
    cookie = next(c for c in page.context.cookies() if c["name"] == "sm_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"

    answer = settled_totals(stack, http)
    page.goto(stack.api_url + PAGES["overview"])
    assert answer["signups"]["total"] > 0
    assert tile(page, "Signups") == f"{answer['signups']['total']:,}"
    assert tile(page, "Trials started") == f"{answer['trials_started']:,}"
    symbols = {"GBP": "£", "EUR": "€", "USD": "US$"}  # en-GB's Intl currency forms
    for currency, money in answer["money"].items():
        for label, name in (("MRR", "mrr_end"), ("Revenue", "revenue")):
            shown = page.locator(f'[data-metric="{label} ({currency})"] data')
            assert float(shown.get_attribute("value") or "nan") == float(money[name])
            assert shown.inner_text() == f"{symbols[currency]}{float(money[name]):,.2f}"
            assert shown.get_attribute("title") == f"{float(money[name]):,.2f} {currency}"
    assert errors == []


def test_numbers_are_formatted_in_the_viewers_locale(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    settled_totals(stack, http)
    page, errors = new_page(browser, locale="de-DE")
    sign_in(page, stack)
    page.goto(
        stack.api_url
        + "/console/metrics?metric=revenue&granularity=month&from=2026-05-01&to=2026-10-31"
    )
    cells = page.locator("table tbody td data")
    assert cells.count() > 0
    for i in range(cells.count()):
        cell = cells.nth(i)
        value = float(cell.get_attribute("value") or "nan")
        currency = cell.get_attribute("data-currency")
        expected = page.evaluate(
            "([v, c]) => v.toLocaleString('de-DE', {style: 'currency', currency: c})",
            [value, currency],
        )
        assert cell.inner_text() == expected
        if value >= 1000:
            assert "." in expected.split(",")[0]  # German thousands, not English ones
    assert errors == []


def test_every_page_fits_360_px_has_no_serious_axe_violation_and_is_photographed(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    settled_totals(stack, http)  # photographed with the demo season in them
    SHOTS.mkdir(parents=True, exist_ok=True)
    axe = Axe()
    found: dict[str, Any] = {}
    for width in (360, 1440):
        page, errors = new_page(browser, width)
        for name, path in PAGES.items():
            if name == "sign-in":
                page.context.clear_cookies()
            else:
                if not any(c["name"] == "sm_console" for c in page.context.cookies()):
                    sign_in(page, stack)
            page.goto(stack.api_url + path)
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{name} scrolls sideways at {width} px ({scroll})"
            results = axe.run(page)
            serious = [
                v["id"]
                for v in results.response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            found[f"{name}-{width}"] = serious
        assert errors == [], errors
    assert all(not v for v in found.values()), found


def test_without_javascript_the_numbers_are_still_there(
    stack: RunningStack, browser: Browser
) -> None:
    page, _ = new_page(browser, javascript=False)
    sign_in(page, stack)
    page.goto(stack.api_url + PAGES["overview"])
    assert re.fullmatch(r"[\d,]+", tile(page, "Signups"))
    page.goto(stack.api_url + PAGES["metrics"])
    assert page.locator("table tbody tr").count() >= 20  # one row per week of the season


def test_a_revoked_key_ends_its_session(stack: RunningStack, browser: Browser) -> None:
    created = stack.smctl_json("key", "create", stack.org["org_id"], "--scope", "metrics:read")
    page, _ = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.goto(stack.api_url + PAGES["overview"])
    assert page.url.endswith(PAGES["overview"])

    stack.smctl("key", "revoke", stack.org["org_id"], created["key_id"])

    page.goto(stack.api_url + PAGES["overview"])
    assert "/console/sign-in" in page.url
    assert "revoked" in page.locator(".problem").inner_text()


def test_sign_out_ends_the_session(stack: RunningStack, browser: Browser) -> None:
    page, _ = new_page(browser)
    sign_in(page, stack)
    page.click("text=Sign out")
    page.wait_for_url("**/console/sign-in")
    page.goto(stack.api_url + PAGES["overview"])
    assert "/console/sign-in" in page.url


def test_attacker_controlled_text_runs_no_script(stack: RunningStack, browser: Browser) -> None:
    page, _ = new_page(browser)
    page.goto(stack.api_url + "/console/sign-in?reason=" + httpx.QueryParams({"r": XSS})["r"])
    assert XSS in page.locator(".problem").inner_text()  # shown as text
    sign_in(page, stack)
    page.goto(stack.api_url + "/console/metrics?metric=" + httpx.QueryParams({"m": XSS})["m"])
    assert "unknown metric" in page.locator(".problem").inner_text()
    assert page.evaluate("window.__xss") is None


def test_the_csv_holds_exactly_the_numbers_drawn(stack: RunningStack, browser: Browser) -> None:
    page, _ = new_page(browser)
    sign_in(page, stack)
    page.goto(stack.api_url + PAGES["metrics"])
    with page.expect_download() as download:
        page.click("text=Download these numbers as CSV")
    lines = Path(download.value.path()).read_text().splitlines()
    rows = page.locator("table tbody tr")
    assert len(lines) - 1 == rows.count()
    first = rows.nth(0).locator("td")
    assert lines[1].split(",")[0] == first.nth(0).inner_text()
    assert float(lines[1].split(",")[1]) == float(first.nth(3).inner_text().replace(",", ""))


def test_an_xlsx_export_is_created_and_downloaded_from_the_exports_page(
    stack: RunningStack, browser: Browser
) -> None:
    page, errors = new_page(browser)
    sign_in(page, stack)
    page.goto(stack.api_url + "/console/exports")
    page.select_option("#dataset", "events")
    page.select_option("#format", "xlsx")
    page.fill("#from", "2026-09-01")
    page.fill("#to", "2026-09-30")
    page.click("text=Create export")
    page.wait_for_url("**/console/exports?done=*")
    export_id = re.search(r"export (exp_\w+) queued", page.locator(".done").inner_text())[1]
    row = page.locator(f'tr[data-export="{export_id}"]')
    # The page refreshes itself while an export runs (no script needed).
    link = row.locator("a", has_text="Download")
    link.wait_for(timeout=120_000)
    with page.expect_download() as download:
        link.click()
    saved = Path(download.value.path())
    assert saved.read_bytes()[:2] == b"PK"  # an XLSX is a zip
    assert download.value.suggested_filename.endswith(".xlsx")
    row.locator("a", has_text="manifest").click()
    page.wait_for_url(f"**/console/exports/{export_id}/manifest")
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    assert digest in page.locator("pre.json").inner_text()  # the manifest of that very file
    page.screenshot(path=str(SHOTS / "export-manifest-1440.png"), full_page=True)
    assert errors == []
    # The manifest page, like every other page: 360 px wide and no serious axe violation.
    narrow, narrow_errors = new_page(browser, 360)
    sign_in(narrow, stack)
    narrow.goto(f"{stack.api_url}/console/exports/{export_id}/manifest")
    narrow.screenshot(path=str(SHOTS / "export-manifest-360.png"), full_page=True)
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 360
    violations = Axe().run(narrow).response["violations"]
    assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == []
    assert narrow_errors == []


def test_a_failed_delivery_is_retried_from_the_deliveries_page_and_delivered(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:8]
    created = stack.smctl_json("org", "create", f"Console deliveries {tag}")
    hook = _hook_for(stack, created["org_id"], tag)
    event = _event(f"console_{tag}")
    delivery_id = _failed_delivery(stack, http, created, hook, event)

    page, errors = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.goto(stack.api_url + "/console/deliveries?status=failed")
    row = page.locator(f'tr[data-delivery="{delivery_id}"]')
    assert "HTTP 400" in row.inner_text()
    row.locator("text=Retry").click()
    page.wait_for_url("**/console/deliveries?done=*")
    assert "queued again" in page.locator(".done").inner_text()

    wait_until(
        lambda: any(r["path"] == hook and r["status"] == 200 for r in sink_requests(stack)),
        90,
        "the retried delivery at the webhook",
    )
    page.goto(stack.api_url + "/console/deliveries?event_id=" + event["id"])
    assert page.locator(f'tr[data-delivery="{delivery_id}"] .status').inner_text() == "delivered"
    assert errors == []


def test_an_erasure_started_from_the_privacy_page_ends_with_its_receipt(
    stack: RunningStack, browser: Browser
) -> None:
    page, errors = new_page(browser)
    sign_in(page, stack)
    page.goto(stack.api_url + "/console/privacy")
    page.fill("#subject", f"usr_console_erasure_{uuid.uuid4().hex[:6]}")
    page.click("button:has-text('Erase')")
    page.wait_for_url("**/console/privacy/erasures/*")
    status = page.locator("[data-status]")
    # The page refreshes itself until the erasure is finished.
    page.wait_for_selector(
        '[data-status="succeeded"], [data-status="needs_attention"]', timeout=120_000
    )
    assert status.get_attribute("data-status") == "succeeded"
    assert "Receipt" in page.locator("h2").inner_text()
    assert page.locator("tr[data-system]").count() >= 5
    page.screenshot(path=str(SHOTS / "erasure-1440.png"), full_page=True)
    assert errors == []


def test_a_key_is_created_shown_once_and_revoked_from_settings(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    page, errors = new_page(browser)
    sign_in(page, stack)
    page.goto(stack.api_url + "/console/settings")
    page.check('input[value="metrics:read"]')
    page.fill("#description", "<b>console test</b>")
    page.click("text=Create key")
    new_key = page.locator(".new-key").inner_text()
    key_id = new_key.split(".")[2]
    url = f"{stack.api_url}/v1/metrics?from=2026-05-01&to=2026-05-31"
    assert http.get(url, headers={"Authorization": f"Bearer {new_key}"}).status_code == 200

    page.goto(stack.api_url + "/console/settings")
    assert page.locator(".new-key").count() == 0  # never shown again
    row = page.locator(f'tr[data-key="{key_id}"]')
    assert "<b>console test</b>" in row.inner_text()  # escaped, shown as text
    row.locator("text=Revoke").click()
    page.wait_for_url("**/console/settings?done=*")
    assert "revoked" in page.locator(f'tr[data-key="{key_id}"]').inner_text()
    answer = http.get(url, headers={"Authorization": f"Bearer  {new_key}"})
    assert answer.status_code == 401
    assert errors == []


def test_a_one_time_link_signs_in_once_with_its_scopes(
    stack: RunningStack, browser: Browser
) -> None:
    made = stack.smctl_json("console", "link", stack.org["org_id"], "--scope", "metrics:read")
    assert made["url"].startswith(stack.api_url + "/console/sign-in/link?token=")
    page, errors = new_page(browser)
    page.goto(made["url"])
    page.click("text=Sign in with this link")
    page.wait_for_url("**/console/overview")
    # A metrics:read session sees no export form, and the server refuses the action anyway.
    page.goto(stack.api_url + "/console/exports")
    assert page.locator("text=Create export").count() == 0
    assert "exports:read" in page.locator(".problem").inner_text()

    other, _ = new_page(browser)
    other.goto(made["url"])
    other.click("text=Sign in with this link")
    assert "/console/sign-in" in other.url
    assert "used already" in other.locator(".problem").inner_text()
    # The refused pages answer 403 and 401 (the browser logs them); nothing else went wrong.
    assert all("403" in e or "401" in e for e in errors), errors


def test_live_events_show_each_events_json_and_where_it_went(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:8]
    event = {
        "id": f"evt_live_{tag}",
        "type": "couple.vendor_searched",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user_id": f"usr_live_{tag}",
        "user_type": "couple",
        "properties": {"vendor_category": XSS},
        "consent": {"analytics": False},
    }
    # An organization of its own: the demo organization's event count is another test's.
    org = stack.smctl_json("org", "create", f"Console live {tag}")
    stack.smctl(
        "dest", "put", org["org_id"], "hooks", "--settings",
        json.dumps({"kind": "webhook", "url": f"{stack.sink_url}/webhooks/live-{tag}"}),
    )  # fmt: skip
    answer = post_signed(
        http, stack.api_url, org["org_id"], org["webhook_secret"], {"events": [event]}
    )
    assert answer.status_code == 202, answer.text
    page, errors = new_page(browser)
    sign_in(page, stack, org["api_key"])

    def shown() -> bool:
        page.goto(f"{stack.api_url}/console/live?user_id={event['user_id']}")
        found = page.locator(f'details[data-event="{event["id"]}"]')
        return found.count() == 1 and ": withheld" in found.inner_text()

    # No analytics consent: the consent gate keeps it from every destination, and says why.
    wait_until(shown, 60, "the event on the live page, withheld from its destinations")
    details = page.locator(f'details[data-event="{event["id"]}"]')
    details.locator("summary").click()
    assert "the event does not carry analytics consent" in details.inner_text()
    assert json.dumps(XSS)[1:-1] in details.locator("pre").inner_text()  # the JSON, as text
    assert page.evaluate("window.__xss") is None
    assert errors == []


def test_a_destination_is_disabled_and_enabled_again_with_its_health_shown(
    stack: RunningStack, browser: Browser
) -> None:
    page, errors = new_page(browser)
    sign_in(page, stack)
    page.goto(stack.api_url + "/console/destinations")
    row = page.locator('tr[data-dest="webhook"]')
    assert "closed" in row.inner_text()  # the breaker
    assert row.locator(".state").inner_text().startswith("enabled")
    row.locator("button", has_text="Disable").click()
    page.wait_for_url("**/console/destinations?done=*")
    assert page.locator('tr[data-dest="webhook"] .state').inner_text().startswith("disabled")
    page.locator('tr[data-dest="webhook"] button', has_text="Enable").click()
    page.wait_for_url("**/console/destinations?done=*")
    assert page.locator('tr[data-dest="webhook"] .state').inner_text().startswith("enabled")
    # GA4's validation server (the sink's, as documented) asked about the GA4 destination.
    page.locator('tr[data-dest="ga4"] button', has_text="Validate with GA4").click()
    page.wait_for_url("**/console/destinations?done=*")
    assert page.locator(".done").inner_text() == "GA4 accepts events for ga4"
    assert errors == []


def test_the_webhook_secret_is_rotated_with_the_old_one_valid_for_24_hours(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    created = stack.smctl_json("org", "create", f"Console secrets {uuid.uuid4().hex[:6]}")
    page, errors = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.goto(stack.api_url + "/console/settings")
    page.click("text=Rotate the webhook secret")
    new_secret = page.locator(".new-secret").inner_text()
    assert new_secret.startswith("whsec_")
    assert "valid until" in page.locator("table").first.inner_text()
    event = {
        "id": f"evt_rot_{uuid.uuid4().hex[:8]}",
        "type": "user.signed_up",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user_id": "usr_rot",
        "user_type": "couple",
    }
    for secret in (created["webhook_secret"], new_secret):
        sent = post_signed(http, stack.api_url, created["org_id"], secret, {"events": [event]})
        assert sent.status_code == 202, sent.text
    page.goto(stack.api_url + "/console/settings")
    assert page.locator(".new-secret").count() == 0
    assert "POST /console/settings/webhook-secret" in page.inner_text("body")  # audited
    assert errors == []


def test_times_show_in_the_viewers_time_zone_with_utc_on_hover(
    stack: RunningStack, browser: Browser
) -> None:
    page, errors = new_page(browser, zone="Asia/Tokyo")
    sign_in(page, stack)
    page.goto(stack.api_url + "/console/settings")  # the audit log has times
    first = page.locator("time[datetime]").first
    instant = first.get_attribute("datetime")
    assert instant
    assert first.get_attribute("title") == instant.replace("T", " ")[:19] + " UTC"
    assert first.inner_text() != first.get_attribute("title")  # shown in Tokyo time
    assert errors == []


def test_the_cohort_grid_and_funnel_equal_the_api(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    settled_totals(stack, http)
    answer = http.get(
        f"{stack.api_url}/v1/metrics/funnel?{SEASON}",
        headers={"Authorization": f"Bearer {stack.org['api_key']}"},
    ).json()
    page, errors = new_page(browser)
    sign_in(page, stack)
    page.goto(f"{stack.api_url}/console/cohorts?{SEASON}")
    for step in answer["steps"]:
        row = page.locator(f'tr[data-step="{step["step"]}"] td').nth(1)
        assert row.inner_text() == f"{step['couples']:,}"
    assert errors == []


def test_a_destination_added_from_the_page_receives_events_signed_with_the_secret_shown_once(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    from success_metrics import signing

    tag = uuid.uuid4().hex[:8]
    created = stack.smctl_json("org", "create", f"Console destinations {tag}")
    hook = f"/webhooks/added-{tag}"
    page, errors = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.goto(stack.api_url + "/console/destinations")
    page.click("text=Add a destination")
    page.fill("#dest_id", "crm")
    page.fill("#name", "CRM <b>")
    page.fill("#f_url", f"{stack.sink_url}{hook}")
    page.fill("#f_event_types", "user.*")
    page.select_option("#f_consent", "none")
    page.click("button[type=submit] >> text=Add destination")
    secret = page.locator(".new-secret").inner_text()
    assert secret.startswith("whsec_")
    assert page.locator('tr[data-dest="crm"]').count() == 1

    def delivered(n: int) -> list[dict[str, Any]]:
        return [r for r in sink_requests(stack) if r["path"] == hook][:n]

    def send(event_id: str) -> None:
        event = {
            "id": event_id,
            "type": "user.signed_up",
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "user_id": f"usr_{tag}",
            "user_type": "couple",
        }
        sent = post_signed(
            http, stack.api_url, created["org_id"], created["webhook_secret"], {"events": [event]}
        )
        assert sent.status_code == 202, sent.text

    send(f"evt_add_{tag}_1")
    # Edited with the secret field left blank: the name changes, the secret is kept.
    page.goto(stack.api_url + "/console/destinations/crm/edit")
    assert secret not in page.content()
    page.fill("#name", "CRM (EU)")
    page.click("button[type=submit] >> text=Save")
    page.wait_for_url("**/console/destinations?done=*")
    assert "CRM (EU)" in page.locator('tr[data-dest="crm"]').inner_text()
    assert secret not in page.content()
    send(f"evt_add_{tag}_2")

    found = wait_until(lambda: len(delivered(2)) == 2 and delivered(2), 90, "two deliveries")
    for record in found:
        headers = {k.lower(): v for k, v in record["headers"].items()}
        signing.verify([secret], headers, record["body"].encode(), time.time(), 3600)
    assert errors == []


def test_settings_forms_change_margin_alerts_slack_and_privacy(
    stack: RunningStack, browser: Browser
) -> None:
    created = stack.smctl_json("org", "create", f"Console settings {uuid.uuid4().hex[:6]}")
    page, errors = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.goto(stack.api_url + "/console/settings")
    page.fill("#margin", "0.8")
    page.click("text=Save margin")
    page.wait_for_url("**/console/settings?done=*")
    assert page.locator('[data-setting="margin"]').inner_text() == "0.8"
    page.select_option("#alert_metric", "revenue")
    page.fill("#alert_currency", "GBP")
    page.select_option("#alert_op", "<")
    page.fill("#alert_value", "50")
    page.click("text=Add alert")
    page.wait_for_url("**/console/settings?done=*")
    assert page.locator('[data-setting="alerts"]').inner_text() == "revenue:GBP < 50"
    slack = f"{stack.sink_url}/services/T1/B1/{uuid.uuid4().hex}"
    page.fill("#slack_url", slack)
    page.click("text=Save Slack webhook")
    page.wait_for_url("**/console/settings?done=*")
    assert page.locator('[data-setting="slack"]').inner_text() == "set (write-only)"
    assert slack not in page.content()
    page.fill("#slack_url", "http://169.254.169.254/latest/meta-data")
    page.click("text=Save Slack webhook")
    assert page.locator(".problem").count() == 1  # the problem document's detail, as a page
    page.goto(stack.api_url + "/console/settings")
    page.check("input[name=anonymise_all]")
    page.click("text=Save privacy")
    page.wait_for_url("**/console/settings?done=*")
    assert page.locator('[data-setting="privacy"]').inner_text().startswith("every user")
    shown = stack.smctl_json("org", "show", created["org_id"])
    assert shown["gross_margin"] == "0.8"
    # The one error the browser reports is the refused Slack URL's 400 answer.
    assert errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]


def test_breakdowns_show_peak_against_off_peak_as_the_api_counts_them(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    settled_totals(stack, http)
    query = "from=2025-11-01&to=2026-10-31&granularity=season"
    answer = http.get(
        f"{stack.api_url}/v1/metrics?{query}&breakdown=channel",
        headers={"Authorization": f"Bearer {stack.org['api_key']}"},
    ).json()
    page, errors = new_page(browser)
    sign_in(page, stack)
    page.goto(f"{stack.api_url}/console/breakdowns?{query}&dimension=channel")
    labels = [p["period"] for p in answer["periods"]]
    assert labels == ["2025-offpeak", "2026-peak"]
    headers = page.locator("table[data-period='2026-peak'] thead th").all_inner_texts()
    column = headers.index("signups couple")
    for period in answer["periods"]:
        for channel, figures in period["metrics"]["breakdown"].items():
            row = page.locator(f"table[data-period='{period['period']}'] tr[data-row='{channel}']")
            cells = row.locator("th, td").all_inner_texts()
            expected = f"{figures['signups'].get('couple', 0):,}"
            assert cells[column] == expected, (period, channel)
    assert page.locator("text=Feature adoption").count() == 1
    # another breakdown without a page reload: the page's state survives, the address follows
    page.evaluate("window.__same_page = true")
    page.select_option("#dimension", "region")
    page.click("button[type=submit] >> text=Show")
    page.wait_for_selector("tr[data-row*=' / ']")  # country / region rows
    assert page.evaluate("window.__same_page") is True
    assert "dimension=region" in page.url
    page.go_back()  # the channel breakdown again, fetched for the address Back returned to
    wait_until(lambda: page.locator("tr[data-row*=' / ']").count() == 0, 30, "the channels")
    assert "dimension=region" not in page.url
    assert page.evaluate("window.__same_page") is True
    assert errors == []


def _hook_for(stack: RunningStack, org_id: str, tag: str) -> str:
    """A webhook destination `hooks` of the organization at the sink; its path."""
    hook = f"/webhooks/console-{tag}"
    stack.smctl(
        "dest", "put", org_id, "hooks", "--settings",
        json.dumps({"kind": "webhook", "url": f"{stack.sink_url}{hook}"}),
    )  # fmt: skip
    return hook


def _org_with_a_hook(stack: RunningStack, tag: str) -> tuple[dict[str, Any], str]:
    created = stack.smctl_json("org", "create", f"Console recovery {tag}")
    return created, _hook_for(stack, created["org_id"], tag)


def _event(tag: str) -> dict[str, Any]:
    return {
        "id": f"evt_{tag}",
        "type": "user.signed_up",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user_id": f"usr_{tag}",
        "user_type": "couple",
        "consent": {"analytics": True, "marketing": True},
    }


def _failed_delivery(
    stack: RunningStack, http: httpx.Client, org: dict[str, Any], hook: str, event: dict[str, Any]
) -> str:
    """Send `event` while the sink answers 400 at `hook`: the id of its failed delivery."""
    headers = {"Authorization": f"Bearer {org['api_key']}"}
    fault = {"status": 400, "path_prefix": hook}
    assert http.put(f"{stack.sink_url}/_sink/fault", json=fault).status_code == 200
    try:
        answer = post_signed(http, stack.api_url, org["org_id"], org["webhook_secret"],
                             {"events": [event]})  # fmt: skip
        assert answer.status_code == 202, answer.text
        failed = wait_until(
            lambda: http.get(
                f"{stack.api_url}/v1/deliveries?status=failed", headers=headers
            ).json()["deliveries"],
            90,
            "the delivery to fail",
        )
    finally:
        http.delete(f"{stack.sink_url}/_sink/fault")
    return str(failed[0]["delivery_id"])


def _delivered(stack: RunningStack, hook: str, event_id: str) -> bool:
    return any(
        r["path"] == hook and r["status"] == 200 and event_id in r["body"]
        for r in sink_requests(stack)
    )


def test_a_delivery_shows_its_attempts_and_a_recovery_job_delivers_what_failed_since(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:8]
    created, hook = _org_with_a_hook(stack, tag)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 60))
    event = _event(f"recover_{tag}")
    delivery_id = _failed_delivery(stack, http, created, hook, event)

    page, errors = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.goto(stack.api_url + "/console/deliveries?dest_id=hooks&status=failed")
    page.click(f'tr[data-delivery="{delivery_id}"] a')
    page.wait_for_url(f"**/console/deliveries/{delivery_id}")
    attempt = page.locator('tr[data-attempt="1"]').inner_text()
    assert "400" in attempt
    assert " ms" in attempt
    page.screenshot(path=str(SHOTS / "delivery-1440.png"), full_page=True)

    page.goto(stack.api_url + "/console/deliveries")
    page.click("details.recover summary")  # folded while there is no job yet
    page.fill("#recover_since", since)
    page.select_option("#recover_dest", "hooks")
    page.click("details.recover button[type=submit]")
    page.wait_for_url("**/console/deliveries?done=*")
    assert "recovery rec_" in page.locator(".done").inner_text()
    job = page.locator("tr[data-recovery]").first
    # the page follows the job (it reloads itself while the job runs)
    wait_until(lambda: job.locator(".status").inner_text() == "done", 90, "the recovery job")
    assert job.locator(".found").inner_text() == "1"
    assert job.locator(".queued").inner_text() == "1"
    wait_until(lambda: _delivered(stack, hook, event["id"]), 90, "the recovered delivery")
    page.screenshot(path=str(SHOTS / "deliveries-recovery-1440.png"), full_page=True)
    assert errors == []


def test_a_dead_letter_is_replayed_from_its_page_and_then_delivered(
    stack: RunningStack, browser: Browser, http: httpx.Client
) -> None:
    """The record a consumer writes on a message's last receive (what the integration tests
    produce through real redrive; here the stack's queues keep the template's 6-minute
    visibility timeouts) is written for a real stored event that went nowhere: its
    organization then adds a destination and replays the message from the console."""
    from success_metrics.stores.deliveries import DeliveryStore
    from success_metrics.sync_queue import pack

    tag = uuid.uuid4().hex[:8]
    created = stack.smctl_json("org", "create", f"Console dead letters {tag}")
    org_id = created["org_id"]
    event = _event(f"dead_{tag}")
    answer = post_signed(
        http, stack.api_url, org_id, created["webhook_secret"], {"events": [event]}
    )
    assert answer.status_code == 202, answer.text
    environment = stack.state["environment"]
    dynamodb = aws(stack, "dynamodb")
    stored = wait_until(
        lambda: dynamodb.get_item(
            TableName=environment["EVENTS_TABLE"], Key={"pk": {"S": f"{org_id}#{event['id']}"}}
        ).get("Item"),
        30,
        "the stored event",
    )
    (body,) = pack(org_id, "wh_replayed", [stored["body"]["S"]])
    message_id = f"msg-{tag}"
    now = int(time.time())
    DeliveryStore(dynamodb, environment["DELIVERIES_TABLE"]).put_dead_letter(
        org_id,
        {
            "queue": "sync", "message_id": message_id, "at": now, "receives": 5,
            "reason": f'RuntimeError: <script>window.__xss=1</script> {tag}',
            "carried": {"events": 1, "webhook_id": "wh_replayed"}, "replayed_at": None,
        },
        body,
        now + 3600,
    )  # fmt: skip
    hook = _hook_for(stack, org_id, tag)

    page, errors = new_page(browser)
    sign_in(page, stack, created["api_key"])
    page.click("nav >> text=Dead letters")
    page.wait_for_url("**/console/dead-letters")
    assert page.locator('tr[data-queue="sync"] .count').inner_text() == "1"
    row = page.locator(f'tr[data-message="{message_id}"]')
    assert "<script>" in row.inner_text()  # shown as text, never run
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(SHOTS / "dead-letters-1440.png"), full_page=True)
    row.get_by_role("button", name="Replay", exact=True).click()
    page.wait_for_url("**/console/dead-letters?done=*")
    assert "sent to the sync queue again" in page.locator(".done").inner_text()
    assert "replayed" in page.locator(f'tr[data-message="{message_id}"] .status').inner_text()
    assert page.locator('tr[data-queue="sync"] .count').inner_text() == "0"
    wait_until(lambda: _delivered(stack, hook, event["id"]), 90, "the replayed event")
    assert errors == []
