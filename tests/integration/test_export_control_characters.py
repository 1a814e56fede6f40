"""One event with XML-illegal control characters no longer breaks every XLSX export of its range:
the spreadsheet drops them, the text formats keep them (CSV quotes them, JSON escapes them)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import openpyxl

from devstack.provision import Stack
from success_metrics.models.organizations import CreatedOrganization
from tests.support import sample_event
from tests.support.exports import Exports, file_bytes, load, run_worker

REGION = "Lon\x01don"
NOTE = "first\x0bsecond\x1f"


def test_control_characters_export_in_every_format(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, authorizer_handler: Any
) -> None:
    from export_request import app as exports_app
    from export_worker import app as worker_app

    # Given a stored event whose region and a property carry control characters
    event = sample_event(occurred_at="2026-06-14T10:31:00Z", properties={"note": NOTE})
    event["context"] = {**event.get("context", {}), "country": "GB", "region": REGION}
    load(stack, webhook_handler, org, [event])
    api = Exports(exports_app.lambda_handler, authorizer_handler, org.api_key)
    files: dict[str, bytes] = {}
    for fmt in ("csv", "json", "ndjson", "xlsx"):
        # When it is exported in each format
        created = api.create(format=fmt, start="2026-06-14", end="2026-06-14")
        assert created.status == 202, created
        run_worker(stack, worker_app.lambda_handler)
        job = api.get(created.json["id"]).json
        # Then every export succeeds
        assert job["status"] == "succeeded", (fmt, job)
        files[fmt] = file_bytes(org.org_id, job["id"])

    [row] = list(csv.DictReader(io.StringIO(files["csv"].decode())))
    assert REGION in row.values()
    [record] = json.loads(files["json"])
    assert REGION in record.values()
    assert record["properties"] == {"note": NOTE}
    assert json.loads(files["ndjson"].splitlines()[0]) == record
    workbook = openpyxl.load_workbook(io.BytesIO(files["xlsx"]), read_only=True)
    cells = [
        c for sheet in workbook.worksheets for r in sheet.iter_rows(values_only=True) for c in r
    ]
    assert "London" in cells  # the illegal character dropped, the rest kept
    assert not any(isinstance(c, str) and "\x01" in c for c in cells)
    # properties are a JSON cell, where JSON's own escapes keep them (and the XML valid)
    assert any(isinstance(c, str) and "first\\u000bsecond" in c for c in cells)
