"""The console in a real browser: Debian's chromium driven by Playwright against the running
local stack. Screenshots of every page at 360 and 1440 px go to .local/screenshots/."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import ROOT, RunningStack

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
    browser: Browser, width: int = 1440, javascript: bool = True
) -> tuple[Page, list[str]]:
    context = browser.new_context(
        viewport={"width": width, "height": 740 if width <= 400 else 900},
        java_script_enabled=javascript,
        timezone_id="Europe/London",
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
    """The season's totals once the demo is aggregated and stops moving."""
    url = f"{stack.api_url}/v1/metrics?{SEASON}&granularity=day"
    headers = {"Authorization": f"Bearer {stack.org['api_key']}"}
    previous = None
    for _ in range(120):
        totals: dict[str, Any] = http.get(url, headers=headers).json()["totals"]
        if totals["signups"]["total"] and totals == previous:
            return totals
        previous = totals
        time.sleep(1)
    raise AssertionError(f"the demo season never settled: {previous}")


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
    for currency, money in answer["money"].items():
        assert tile(page, f"MRR ({currency})") == f"{float(money['mrr_end']):,.2f} {currency}"
        assert tile(page, f"Revenue ({currency})") == f"{float(money['revenue']):,.2f} {currency}"
    assert errors == []


def test_every_page_fits_360_px_has_no_serious_axe_violation_and_is_photographed(
    stack: RunningStack, browser: Browser
) -> None:
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
