"""Exports end to end: an XLSX of the demo season, from the request to the emailed link."""

from __future__ import annotations

import io
import os
import re
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
from openpyxl import load_workbook

from devstack import demo
from tests.e2e.conftest import RunningStack, demo_season_metrics

SEASON = {"from": "2026-05-01", "to": "2026-10-31"}


def find_email(outbox: Path, export_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")):
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            text = mail.get_body(("plain",)).get_content()
            if export_id in text:
                return mail
        time.sleep(0.5)
    raise AssertionError(f"no email about {export_id} in {outbox}")


def test_xlsx_export_of_the_demo_season_arrives_by_email_and_matches_the_metrics(
    stack: RunningStack, http: httpx.Client
) -> None:
    key = stack.org["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    metrics = demo_season_metrics(stack, http, key)

    # When the operator asks for the season as Excel, to be emailed
    created = http.post(
        f"{stack.api_url}/v1/exports",
        json={"dataset": "events", "format": "xlsx", **SEASON, "notify": ["ops@example.com"]},
        headers=auth,
    )
    assert created.status_code == 202, created.text
    export_id = created.json()["id"]
    deadline = time.monotonic() + 240
    job = created.json()
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1)
        job = http.get(f"{stack.api_url}/v1/exports/{export_id}", headers=auth).json()
    assert job["status"] == "succeeded", job

    # Then an email with the link lands in the outbox
    mail = find_email(Path(stack.state["outbox"]), export_id)
    assert mail["To"] == "ops@example.com"
    assert mail.get_body(("html",)) is not None
    text = mail.get_body(("plain",)).get_content()
    link = re.search(r"Download: (\S+)", text)
    assert link is not None
    assert link.group(1).startswith(stack.api_url)

    # and following it, with no API key, gives the file
    redirect = http.get(link.group(1))
    assert redirect.status_code == 302, redirect.text
    download = http.get(redirect.headers["location"])
    assert download.status_code == 200
    book = load_workbook(io.BytesIO(download.content))

    # with one row per demo season event
    size = int(os.environ.get("SM_E2E_DEMO_SIZE", "300"))
    in_season = [
        e
        for e in demo.organization_events(size, seed=7)
        if SEASON["from"] <= e["occurred_at"][:10] <= SEASON["to"]
    ]
    assert book.sheetnames[0] == "Summary"
    data = book["Data"]
    assert data.max_row - 1 == len(in_season) == job["progress"]["rows"]

    # and a Summary sheet that says what /v1/metrics says
    rows = list(book["Summary"].iter_rows(min_row=4, values_only=True))
    label = rows[0].index("Figure")
    summary = {row[label]: row[label + 1] for row in rows[1:] if row[label]}
    totals = metrics["totals"]
    assert summary["Signups"] == totals["signups"]["total"]
    assert summary["Trials started"] == totals["trials_started"]
    assert summary["New paying suppliers"] == totals["new_paying_suppliers"]
    for currency, money in totals["money"].items():
        assert summary[f"Revenue ({currency})"] == float(money["revenue"])
    monthly = {}
    for row in book["Summary"].iter_rows(min_row=5, values_only=True):
        if not row[0]:
            break  # the end of the monthly table (the MRR movements table comes later)
        monthly[row[0]] = row[1]
    assert monthly == {p["period"]: p["metrics"]["signups"]["total"] for p in metrics["periods"]}


def test_smctl_requests_waits_for_and_downloads_an_export(
    stack: RunningStack, tmp_path: Path
) -> None:
    job = stack.smctl_json(
        "export",
        "create",
        "--format",
        "csv",
        "--compression",
        "gzip",
        "--from",
        SEASON["from"],
        "--to",
        SEASON["to"],
        "--type",
        "user.signed_up",
        "--wait",
    )
    assert job["status"] == "succeeded", job
    target = tmp_path / "signups.csv.gz"

    saved = stack.smctl_json("export", "download", job["id"], "-o", str(target))

    import csv
    import gzip

    rows = list(csv.DictReader(io.StringIO(gzip.decompress(target.read_bytes()).decode())))
    assert saved["bytes"] == target.stat().st_size == job["file"]["bytes"]
    assert len(rows) == job["progress"]["rows"] > 0
    assert {r["type"] for r in rows} == {"user.signed_up"}
    listed = stack.smctl_json("export", "list")
    assert job["id"] in [e["id"] for e in listed["exports"]]
