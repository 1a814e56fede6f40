"""Exports in-process: API, worker, S3 multipart, checkpoints, email (SPEC §5, issue 6)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from devstack import demo
from devstack.provision import Stack
from success_metrics import aws, caches
from success_metrics.exports import datasets, slices
from success_metrics.exports.writers import neutralise
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import organizations
from success_metrics.stores.export_files import ExportFiles
from tests.support.exports import (
    Exports,
    file_bytes,
    load,
    manifest,
    org_key,
    record_of,
    run_worker,
    with_tricky_properties,
)

# One month of demo events keeps the day x shard reads of each export few on moto.
SEASON = {"start": "2026-06-01", "end": "2026-06-30"}
EVENT_COUNT = 900


class World:
    """One provisioned stack with an organization and its events, shared by this module's
    tests (loading and aggregating the events is the slow part); every test makes new jobs."""

    def __init__(self, stack: Stack, org: CreatedOrganization, events: list[dict[str, Any]]):
        from api_authorizer import app as authorizer
        from export_request import app as request
        from export_worker import app as work

        self.stack = stack
        self.org = org
        self.events = events
        self.request = request.lambda_handler
        self.authorizer = authorizer.lambda_handler
        self.worker = work.lambda_handler
        self.api = Exports(self.request, self.authorizer, org_key(org))

    def run(self, **kwargs: Any) -> int:
        return run_worker(self.stack, self.worker, **kwargs)

    def export(self, **spec: Any) -> dict[str, Any]:
        created = self.api.create(**spec)
        assert created.status == 202, created
        self.run()
        got = self.api.get(created.json["id"])
        assert got.status == 200
        return dict(got.json)

    def file(self, job: dict[str, Any]) -> bytes:
        return file_bytes(self.org.org_id, job["id"])


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from webhook_receive import app

    from devstack import iam
    from tests.integration.secured import secured_stack

    with pytest.MonkeyPatch.context() as patch, secured_stack(patch) as (stack, enforcement):
        # Small parts (moto's minimum part size lowered with ours), so every export has many.
        patch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 1024)
        patch.setenv("EXPORT_PART_BYTES", "8192")
        patch.setenv("PUBLIC_API_URL", "https://api.example.test")
        # The driver redelivers failed messages at once (the backoff is tested below).
        patch.setenv("EXPORT_RETRY_SECONDS", "0")
        caches.reset_all()
        org = organizations.create_organization("Bloom & Veil Weddings")
        generated = with_tricky_properties(
            demo.generate(
                EVENT_COUNT, seed=11, season_start=date(2026, 6, 1), season_end=date(2026, 6, 30)
            )
        )
        load(stack, app.lambda_handler, org, generated)
        yield World(stack, org, generated)
        iam.check_and_record(enforcement, __name__)


@pytest.fixture
def env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Per-test settings changes, forgotten afterwards."""
    yield monkeypatch
    monkeypatch.undo()
    caches.reset_all()


def setenv(env: pytest.MonkeyPatch, **values: Any) -> None:
    for name, value in values.items():
        env.setenv(name, str(value))
    caches.reset_all()


def source_rows(events: list[dict[str, Any]], types: list[str] | None = None) -> list[Any]:
    """What an events export must contain: every event's row, in (occurred_at, id) order."""
    rows = [
        datasets.event_row(dict(e, received_at=None))
        for e in events
        if not types or e["type"] in types
    ]
    return sorted(rows, key=lambda r: (r["occurred_at"], r["event_id"]))


def as_text(value: Any) -> str:
    """A source value the way the CSV writer renders it (formula text neutralised)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(neutralise(value))


COMPARED = (
    "event_id",
    "type",
    "occurred_at",
    "user_id",
    "user_type",
    "revenue_amount",
    "revenue_currency",
    "country",
    "device",
    "consent_analytics",
    "properties",
)


# ------------------------------------------------------------------ round trips


def test_csv_round_trip_equals_the_source_rows(world: World) -> None:
    job = world.export(format="csv", **SEASON)

    assert job["status"] == "succeeded", job
    data = world.file(job)
    read = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    expected = source_rows(world.events)
    assert len(read) == len(expected) == job["progress"]["rows"] == EVENT_COUNT
    assert job["progress"]["percent"] == 100.0
    for got, want in zip(read, expected, strict=True):
        for column in COMPARED:
            assert got[column] == as_text(want[column]), column
    # formula-looking text is neutralised, the rest of the text is untouched
    notes = [json.loads(r["properties"]).get("note") for r in read if r["properties"]]
    assert "Zoë & Łukasz — 婚礼 💍" in notes
    assert 'comma, "quoted" and\nnew line' in notes
    m = manifest(world.org.org_id, job["id"])
    assert (m["rows"], m["bytes"]) == (EVENT_COUNT, len(data))
    assert m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["columns"][0] == {"name": "event_id", "type": "text"}
    assert m["range"] == {"from": "2026-06-01", "to": "2026-06-30"}
    assert m["format"] == "csv"


def test_csv_cells_that_look_like_formulas_are_neutralised(world: World) -> None:
    job = world.export(format="csv", **SEASON, filters={"types": ["user.signed_up"]})

    read = list(csv.DictReader(io.StringIO(world.file(job).decode(), newline="")))
    assert read
    assert all(r["type"] == "user.signed_up" for r in read)
    assert len(read) == len(source_rows(world.events, ["user.signed_up"]))
    # A value starting with = + - @ or a tab cannot reach a spreadsheet as a formula.
    for row in read:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_json_is_one_valid_array_equal_to_the_source(world: World) -> None:
    job = world.export(format="json", **SEASON)

    loaded = json.loads(world.file(job))
    expected = source_rows(world.events)
    assert isinstance(loaded, list)
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected, strict=True):
        assert got["event_id"] == want["event_id"]
        assert got["properties"] == want["properties"]
        assert got["revenue_amount"] == (
            str(want["revenue_amount"]) if want["revenue_amount"] is not None else None
        )
        assert got["occurred_at"] == want["occurred_at"].isoformat()


def test_gzipped_ndjson_is_one_object_a_line(world: World) -> None:
    job = world.export(format="ndjson", compression="gzip", **SEASON)

    data = world.file(job)
    assert data[:2] == b"\x1f\x8b"
    lines = gzip.decompress(data).decode().splitlines()
    expected = source_rows(world.events)
    assert [json.loads(line)["event_id"] for line in lines] == [r["event_id"] for r in expected]
    assert job["file"]["name"] == "events-2026-06-01-to-2026-06-30.ndjson.gz"


def read_xlsx(data: bytes) -> Any:
    from openpyxl import load_workbook

    return load_workbook(io.BytesIO(data))


def test_xlsx_has_typed_cells_a_summary_with_charts_and_the_source_rows(world: World) -> None:
    job = world.export(format="xlsx", **SEASON)

    assert job["status"] == "succeeded", job
    book = read_xlsx(world.file(job))
    assert book.sheetnames == ["Summary", "Data"]
    summary = book["Summary"]
    # Signups, revenue, seasonal conversion, and the MRR movements of the demo suppliers.
    titles = [c.title.tx.rich.p[0].r[0].t for c in summary._charts]
    assert titles[:3] == [
        "Signups by month",
        "Revenue by month",
        "Seasonal conversion (vendor booked / searched) by month",
    ]
    assert titles[3:] == ["MRR movements by month (EUR)"]  # the first currency that has any
    sheet = book["Data"]
    rows = list(sheet.iter_rows(values_only=False))
    header = [c.value for c in rows[0]]
    assert header == [c.name for c in datasets.EVENT_COLUMNS]
    expected = source_rows(world.events)
    assert len(rows) - 1 == len(expected)
    index = {name: i for i, name in enumerate(header)}
    for cells, want in zip(rows[1:], expected, strict=True):
        assert cells[index["event_id"]].value == want["event_id"]
        occurred = cells[index["occurred_at"]].value
        assert isinstance(occurred, datetime)
        assert occurred == want["occurred_at"].replace(tzinfo=None)
        amount = cells[index["revenue_amount"]]
        if want["revenue_amount"] is None:
            assert amount.value is None
        else:
            assert amount.value == float(want["revenue_amount"])
            assert amount.number_format == "#,##0.00"
        props = cells[index["properties"]].value
        if want["properties"]:
            assert props == json.dumps(want["properties"], ensure_ascii=False)
    # Formula-looking text is stored as text, never as a formula.
    assert all(c.data_type != "f" for line in rows for c in line)


def displayed(cell: Any) -> str:
    """The text a spreadsheet shows for a cell, under its number format."""
    value, form = cell.value, cell.number_format
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).upper()
    if isinstance(value, int | float):
        if form.endswith("%"):
            return f"{value * 100:.{form.count('0') - 1}f}%"
        if form == "#,##0.00":
            return f"{value:,.2f}"
        if "." in form:
            return f"{value:.{len(form.split('.')[1])}f}"
        return f"{value:g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


def column_index_from_string(letters: str) -> int:
    from openpyxl.utils import column_index_from_string as index

    return int(index(letters))


def test_xlsx_sheets_are_readable_widths_formats_frozen_headers_and_one_page_wide(
    world: World,
) -> None:
    job = world.export(format="xlsx", **SEASON)
    book = read_xlsx(world.file(job))
    summary = book["Summary"]

    # Every column is wide enough for what it shows: headers ("New paying suppliers"),
    # labels ("Seasonal conversion, off-peak") and formatted figures (the title and the range
    # of rows 1-2 run over the empty cells beside them).
    for line in summary.iter_rows(min_row=3):
        for cell in line:
            text = displayed(cell)
            if not text:
                continue
            width = summary.column_dimensions[cell.column_letter].width
            assert width >= len(text) + 1, (cell.coordinate, text, width)
    assert summary.column_dimensions["C"].width >= len("New paying suppliers")
    assert summary.freeze_panes == "A5"  # the title, the range and the table's header
    assert summary.print_title_rows == "$4:$4"
    assert summary.page_setup.orientation == "landscape"
    assert (summary.page_setup.fitToWidth, summary.page_setup.fitToHeight) == (1, 0)
    assert summary.sheet_properties.pageSetUpPr.fitToPage is True
    area = re.search(r"\$A\$1:\$([A-Z]+)\$(\d+)$", str(summary.print_area))
    assert area is not None, summary.print_area
    # The print area holds every cell and both columns of charts (anchored at A and J).
    assert column_index_from_string(area[1]) >= max(summary.max_column, 11)
    assert int(area[2]) >= summary.max_row
    at = [c.value for c in next(summary.iter_rows(min_row=4, max_row=4))].index("Figure")
    figures = {
        line[at].value: line[at + 1] for line in summary.iter_rows(min_row=5) if line[at].value
    }
    assert figures["Trial-to-paid"].number_format == "0.0%"
    assert figures["K-factor"].number_format == "0.00"

    data = book["Data"]
    assert data.freeze_panes == "A2"
    assert data.print_title_rows == "$1:$1"
    assert data.sheet_properties.pageSetUpPr.fitToPage is True
    header = next(data.iter_rows(max_row=1))
    assert all(c.font.b for c in header)
    for cell in header:
        assert data.column_dimensions[cell.column_letter].width >= len(str(cell.value)) + 1
    occurred = header[[c.value for c in header].index("occurred_at")].column_letter
    assert data.column_dimensions[occurred].width >= len("2026-05-01 12:00:00")
    assert data[f"{occurred}2"].number_format == "yyyy-mm-dd hh:mm:ss"


def test_metrics_and_summary_datasets_match_the_metrics_api(world: World) -> None:
    from success_metrics.metrics import query

    metrics_job = world.export(dataset="metrics", format="ndjson", granularity="month", **SEASON)
    summary_job = world.export(dataset="summary", format="json", **SEASON)

    result = query.metrics(
        world.org.org_id,
        query.MetricsQuery.model_validate(
            {"from": "2026-06-01", "to": "2026-06-30", "granularity": "month"}
        ),
        Decimal(1),
    )
    api_rows = list(
        datasets.metric_rows(json.loads(json.dumps(result, default=str)), summary=False)
    )
    lines = [json.loads(line) for line in world.file(metrics_job).decode().splitlines()]
    assert len(lines) == len(api_rows) == metrics_job["progress"]["rows"]
    signups = {r["period"]: r["value"] for r in lines if r["metric"] == "signups.total"}
    assert signups == {
        p["period"]: str(p["metrics"]["signups"]["total"]) for p in result["periods"]
    }
    summary = json.loads(world.file(summary_job))
    totals = {r["metric"]: r["value"] for r in summary if r["period"] == "total"}
    assert totals["signups.total"] == str(result["totals"]["signups"]["total"])
    assert totals["trials_started"] == str(result["totals"]["trials_started"])


# ------------------------------------------------------------------ fan-out, kills, handover


def test_a_fanned_out_export_is_byte_identical_to_one_worker(
    world: World, env: pytest.MonkeyPatch
) -> None:
    one = world.export(format="json", **SEASON)
    setenv(env, EXPORT_SLICE_ROWS=150)
    many = world.export(format="json", **SEASON)

    job = jobs.get(world.org.org_id, many["id"])
    assert job.plan is not None
    assert len(job.plan.slices) >= 5
    assert world.file(many) == world.file(one)
    assert many["progress"]["rows"] == EVENT_COUNT


def assert_rows_reported(world: World, job: dict[str, Any], mails_before: int) -> None:
    """The row count a person is told (the job's progress, the manifest, the email) is the
    file's, however many times the export was resumed."""
    assert job["progress"]["rows"] == EVENT_COUNT, job["progress"]
    assert manifest(world.org.org_id, job["id"])["rows"] == EVENT_COUNT
    [mail] = sent_emails()[mails_before:]
    text = mail.get_body(("plain",)).get_content()
    assert f"Rows: {EVENT_COUNT:,}" in text, text


class Killed(Exception):
    """A simulated crash: the Lambda stopped at this point."""


def chaos(rng: random.Random, probability: float) -> Any:
    """Patch every step of the worker to die, now and then, before or after it happens."""

    def wrap(real: Any) -> Any:
        def maybe_die(*args: Any, **kwargs: Any) -> Any:
            roll = rng.random()
            if roll < probability / 2:
                raise Killed("before")
            result = real(*args, **kwargs)
            if roll > 1 - probability / 2:
                raise Killed("after")
            return result

        return maybe_die

    real_rows = slices.rows

    def dying_rows(*args: Any, **kwargs: Any) -> Any:
        for item in real_rows(*args, **kwargs):
            if rng.random() < probability / 1000:
                raise Killed("while reading")
            yield item

    return [
        mock.patch.object(ExportFiles, "upload_part", wrap(ExportFiles.upload_part)),
        mock.patch.object(ExportFiles, "complete_uploaded", wrap(ExportFiles.complete_uploaded)),
        mock.patch.object(jobs, "save_checkpoint", wrap(jobs.save_checkpoint)),
        mock.patch.object(jobs, "finish_slice", wrap(jobs.finish_slice)),
        mock.patch.object(jobs, "start", wrap(jobs.start)),
        mock.patch.object(slices, "rows", dying_rows),
    ]


@pytest.mark.parametrize(
    ("spec", "slice_rows"),
    [
        ({"format": "csv", "compression": "gzip"}, 2_000_000),
        ({"format": "json"}, 200),
        ({"format": "csv", "compression": "gzip"}, 200),
    ],
    ids=["csv-gzip-one-worker", "json-fan-out", "csv-gzip-fan-out"],
)
def test_killed_at_random_points_many_times_the_file_is_byte_identical(
    world: World, env: pytest.MonkeyPatch, spec: dict[str, Any], slice_rows: int
) -> None:
    setenv(env, EXPORT_SLICE_ROWS=slice_rows, EXPORT_ATTEMPTS=10_000)
    reference = world.file(world.export(**spec, **SEASON))
    rng = random.Random(f"{spec}-{slice_rows}")
    kills = 0
    for trial in range(3):
        patches = chaos(rng, probability=0.2)
        for patch in patches:
            patch.start()
        mails = len(sent_emails())
        try:
            created = world.api.create(**spec, notify=["ops@example.com"], **SEASON)
            invocations = world.run(crashes_resend=True)
        finally:
            for patch in patches:
                patch.stop()
        job = world.api.get(created.json["id"]).json
        assert job["status"] == "succeeded", (trial, job)
        kills += invocations - 1
        assert hashlib.sha256(world.file(job)).hexdigest() == hashlib.sha256(reference).hexdigest()
        assert_rows_reported(world, job, mails)
    assert kills >= 6  # the chaos really interrupted the workers
    # Uploads the crashed workers left open were aborted when the export finished.
    bucket = world.stack.physical["ExportsBucket"]["Ref"]
    open_uploads = aws.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in open_uploads if job["id"] in u["Key"]] == []


def test_handover_when_time_runs_short_gives_the_same_file_and_shows_progress(
    world: World, env: pytest.MonkeyPatch
) -> None:
    reference = world.file(world.export(format="ndjson", **SEASON))
    setenv(env, EXPORT_HANDOVER_MS=60_000)
    clock = {"calls": 0}

    def remaining() -> int:
        # Time is always short: each invocation saves some progress, then hands over.
        clock["calls"] += 1
        return 10_000

    mails = len(sent_emails())
    created = world.api.create(format="ndjson", notify=["ops@example.com"], **SEASON)
    world.run(remaining_ms=remaining, max_invocations=1)
    partial = world.api.get(created.json["id"]).json
    assert partial["status"] == "running"
    assert 0 < partial["progress"]["rows"] < EVENT_COUNT
    assert 0 < partial["progress"]["percent"] < 100
    assert partial["progress"]["estimated_rows"] == EVENT_COUNT
    invocations = world.run(remaining_ms=remaining)
    job = world.api.get(created.json["id"]).json

    assert job["status"] == "succeeded"
    assert invocations >= 3
    assert world.file(job) == reference
    assert_rows_reported(world, job, mails)


# ------------------------------------------------------------------ xlsx specifics


def test_xlsx_starts_a_new_sheet_at_the_boundary_and_resumes_identically(
    world: World, env: pytest.MonkeyPatch
) -> None:
    setenv(env, EXPORT_SHEET_ROWS=250, EXPORT_SLICE_ROWS=300, EXPORT_ATTEMPTS=10_000)
    reference = read_xlsx(world.file(world.export(format="xlsx", **SEASON)))
    assert reference.sheetnames == ["Summary", "Data", "Data 2", "Data 3", "Data 4"]
    sizes = [reference[name].max_row - 1 for name in reference.sheetnames[1:]]
    assert sizes == [250, 250, 250, EVENT_COUNT - 750]

    patches = chaos(random.Random(5), probability=0.2)
    for patch in patches:
        patch.start()
    mails = len(sent_emails())
    try:
        created = world.api.create(format="xlsx", notify=["ops@example.com"], **SEASON)
        world.run(crashes_resend=True)
    finally:
        for patch in patches:
            patch.stop()
    job = world.api.get(created.json["id"]).json
    assert_rows_reported(world, job, mails)
    resumed = read_xlsx(world.file(job))
    for name in reference.sheetnames:
        assert [list(r) for r in resumed[name].iter_rows(values_only=True)] == [
            list(r) for r in reference[name].iter_rows(values_only=True)
        ], name


# ------------------------------------------------------------------ empty, cancel


def test_an_empty_range_gives_a_valid_empty_file(world: World) -> None:
    empty = {"start": "2024-01-01", "end": "2024-01-31"}
    csv_job = world.export(format="csv", **empty)
    json_job = world.export(format="json", **empty)
    xlsx_job = world.export(format="xlsx", **empty)

    assert csv_job["status"] == json_job["status"] == xlsx_job["status"] == "succeeded"
    assert world.file(csv_job).decode().splitlines() == [
        ",".join(c.name for c in datasets.EVENT_COLUMNS)
    ]
    assert json.loads(world.file(json_job)) == []
    book = read_xlsx(world.file(xlsx_job))
    assert book.sheetnames == ["Summary", "Data"]
    assert book["Data"].max_row == 1
    assert csv_job["progress"]["rows"] == 0


def test_cancel_stops_the_worker_at_its_next_checkpoint_and_aborts_the_upload(
    world: World, env: pytest.MonkeyPatch
) -> None:
    setenv(env, EXPORT_HANDOVER_MS=60_000)
    created = world.api.create(format="csv", **SEASON)
    export_id = created.json["id"]
    world.run(remaining_ms=lambda: 30_000, max_invocations=1)  # plan, one part, hand over
    job = jobs.get(world.org.org_id, export_id)
    assert job.status.value == "running"
    upload = job.slice(0).checkpoint
    assert upload is not None
    assert upload.upload_id

    cancelled = world.api.cancel(export_id)
    assert cancelled.status == 200
    assert cancelled.json["status"] == "cancelled"
    world.run()

    bucket = world.stack.physical["ExportsBucket"]["Ref"]
    uploads = aws.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload.upload_id not in [u["UploadId"] for u in uploads]
    objects = aws.s3().list_objects_v2(
        Bucket=bucket, Prefix=f"exports/{world.org.org_id}/{export_id}/"
    )
    assert objects.get("KeyCount", 0) == 0
    final = world.api.get(export_id).json
    assert final["status"] == "cancelled"
    assert final["file"] is None
    assert world.api.download(export_id).status == 409


def test_the_console_cancels_a_running_export_and_withdraws_a_finished_file(
    world: World, env: pytest.MonkeyPatch
) -> None:
    from console import app as console_app

    from tests.support.console import Console

    setenv(env, EXPORT_HANDOVER_MS=60_000)
    console = Console(console_app.lambda_handler)
    console.sign_in(org_key(world.org))
    made = console.act(
        "/console/exports",
        "/console/exports",
        {"dataset": "events", "format": "csv", "from": SEASON["start"], "to": SEASON["end"]},
    )
    assert made.status == 303, made.body
    export_id = made.location.split("export+", 1)[1].split("+", 1)[0]
    world.run(remaining_ms=lambda: 30_000, max_invocations=1)  # plan, one part, hand over
    upload = jobs.get(world.org.org_id, export_id).slice(0).checkpoint
    assert upload is not None
    assert upload.upload_id

    assert console.act("/console/exports", f"/console/exports/{export_id}/cancel").status == 303
    world.run()
    bucket = world.stack.physical["ExportsBucket"]["Ref"]
    uploads = aws.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload.upload_id not in [u["UploadId"] for u in uploads]
    assert jobs.get(world.org.org_id, export_id).status.value == "cancelled"

    finished = world.export(format="csv", **SEASON)
    download = console.get(f"/console/exports/{finished['id']}/download")
    assert download.status == 302
    assert download.location.startswith("http")
    listed = console.get("/console/exports")
    assert f"/console/exports/{finished['id']}/manifest" in listed.body
    manifest = console.get(f"/console/exports/{finished['id']}/manifest")
    assert manifest.status == 200, manifest.body
    assert finished["file"]["sha256"] in manifest.body
    assert f'<data value="{float(finished["progress"]["rows"])!r}"' in manifest.body
    assert re.search(r'<dd><time datetime="\d{4}-\d\d-\d\dT[\d:]+Z"', manifest.body)  # a time
    unfinished = console.get(f"/console/exports/{export_id}/manifest")  # the cancelled one
    assert unfinished.status == 409, unfinished.body
    withdrawn = console.act("/console/exports", f"/console/exports/{finished['id']}/cancel")
    assert withdrawn.status == 303
    assert console.get(f"/console/exports/{finished['id']}/download").status == 410
    assert console.get(f"/console/exports/{finished['id']}/manifest").status == 410
    objects = aws.s3().list_objects_v2(
        Bucket=bucket, Prefix=f"exports/{world.org.org_id}/{finished['id']}/"
    )
    assert objects.get("KeyCount", 0) == 0


# ------------------------------------------------------------------ download and email


def sent_emails() -> list[Any]:
    from email import message_from_bytes, policy

    from moto.ses.models import ses_backends

    found = []
    for account in ses_backends.values():
        for backend in account.values():
            for message in backend.sent_messages:
                found.append(message_from_bytes(message.raw_data.encode(), policy=policy.default))
    return found


def test_email_has_html_and_text_the_figures_and_a_working_revocable_link(world: World) -> None:
    import requests

    before = len(sent_emails())
    job = world.export(format="csv", notify=["ops@example.com", "ceo@example.com"], **SEASON)

    mails = sent_emails()[before:]
    assert sorted(m["To"] for m in mails) == ["ceo@example.com", "ops@example.com"]
    mail = mails[0]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert f"Rows: {EVENT_COUNT:,}" in text
    assert "Signups:" in text
    assert "The link works until" in text
    assert "Download the file" in html
    link = next(w for w in text.split() if w.startswith("https://api.example.test/"))
    token = link.split("token=", 1)[1]
    from urllib.parse import unquote

    # the link (no API key) answers a short-lived presigned URL to the very file
    redirect = world.api.download(job["id"], token=unquote(token), use_key=False)
    assert redirect.status == 302
    assert "X-Amz-Expires=900" in redirect.headers["location"]
    assert redirect.headers["cache-control"] == "no-store"
    assert requests.get(redirect.headers["location"], timeout=10).content == world.file(job)
    # the API key works too
    assert world.api.download(job["id"]).status == 302
    # a tampered token or none at all is refused
    assert (
        world.api.download(job["id"], token=unquote(token)[:-2] + "xx", use_key=False).status == 401
    )
    assert world.api.download(job["id"], use_key=False).status == 401
    # cancelling a finished export withdraws the file and revokes every link
    assert world.api.cancel(job["id"]).status == 200
    gone = world.api.download(job["id"], token=unquote(token), use_key=False)
    assert gone.status == 410
    assert gone.json["type"].endswith("/gone")


def test_an_expired_link_is_gone(world: World) -> None:
    from success_metrics.exports import links

    job = world.export(format="csv", **SEASON)
    record = jobs.get(world.org.org_id, job["id"])
    token = links.make(record, expires_at=1_000)
    answer = world.api.download(job["id"], token=token, use_key=False)
    assert answer.status == 410
    assert "expired" in answer.json["detail"]


def test_an_xlsx_export_too_large_for_excel_fails_with_a_reason(
    world: World, env: pytest.MonkeyPatch
) -> None:
    setenv(env, EXPORT_XLSX_MAX_ROWS=100)
    job = world.export(format="xlsx", notify=["ops@example.com"], **SEASON)

    assert job["status"] == "failed"
    assert f"about {EVENT_COUNT:,} rows match" in job["error"]
    assert "CSV" in job["error"]


def test_a_failed_export_emails_the_error_in_plain_words(
    world: World, env: pytest.MonkeyPatch
) -> None:
    setenv(env, EXPORT_ATTEMPTS=2)
    before = len(sent_emails())
    from botocore.exceptions import ClientError

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "SlowDown", "Message": "Reduce your request rate"}}, "UploadPart"
        )

    with mock.patch.object(ExportFiles, "upload_part", broken):
        created = world.api.create(format="csv", notify=["ops@example.com"], **SEASON)
        world.run()
    job = world.api.get(created.json["id"]).json

    assert job["status"] == "failed"
    assert "SlowDown" in job["error"]
    assert "request it again" in job["error"]
    [mail] = sent_emails()[before:]
    assert mail["Subject"].startswith("Your export failed")
    assert (
        "What went wrong: a storage service kept refusing"
        in mail.get_body(("plain",)).get_content()
    )


def test_a_deterministically_failing_export_ends_failed_soon_with_its_slot_freed(
    world: World, env: pytest.MonkeyPatch
) -> None:
    """An export that fails the same way on every attempt (the reviewer's was still `running`
    after 300 s: each retry waited for the queue's 90-minute visibility timeout) is retried
    after 5, 15, 45 and 135 s (the product's defaults), then `failed` with a readable error,
    its slot freed and one email sent."""
    from devstack.lambda_events import LambdaContext

    setenv(env, EXPORT_RETRY_SECONDS=5, EXPORT_ATTEMPTS=5)
    before = len(sent_emails())
    sqs = aws.sqs()
    url = world.stack.physical["ExportQueue"]["Ref"]
    arn = world.stack.physical["ExportQueue"]["Arn"]
    requested: list[int] = []
    inside = {"handler": False}

    def capture(params: dict[str, Any], **_: Any) -> None:
        if inside["handler"]:
            requested.append(int(params["VisibilityTimeout"]))

    sqs.meta.events.register("provide-client-params.sqs.ChangeMessageVisibility", capture)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the same bug on every attempt")

    try:
        with mock.patch.object(ExportFiles, "upload_part", broken):
            created = world.api.create(format="csv", notify=["ops@example.com"], **SEASON)
            export_id = created.json["id"]
            invocations = 0
            while invocations < 20:
                got = sqs.receive_message(
                    QueueUrl=url, AttributeNames=["ApproximateReceiveCount"]
                ).get("Messages", [])
                if not got:
                    break
                [message] = got
                record = record_of(arn, message)
                inside["handler"] = True
                result = world.worker(
                    {"Records": [record]}, LambdaContext("ExportWorkerFunction", 900)
                )
                inside["handler"] = False
                invocations += 1
                if result["batchItemFailures"]:
                    # The worker asked for its delay; the test lets that time pass at once.
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    finally:
        sqs.meta.events.unregister("provide-client-params.sqs.ChangeMessageVisibility", capture)

    job = world.api.get(export_id).json
    assert job["status"] == "failed", job
    assert "after 5 attempts" in job["error"]
    assert "unexpected error" in job["error"]
    assert "the same bug" not in job["error"]  # internals stay in the logs
    # Four retries, each about three times the last (up to 20 % jitter): ~3.5 minutes in all.
    assert len(requested) == 4, requested
    for delay, base in zip(requested, (5, 15, 45, 135), strict=True):
        assert base <= delay <= base * 1.2, requested
    slots = aws.dynamodb().get_item(TableName=jobs._table(), Key=jobs._slots_key(world.org.org_id))
    assert export_id not in slots.get("Item", {}).get("active", {}).get("SS", [])
    [mail] = sent_emails()[before:]
    assert mail["Subject"].startswith("Your export failed")


# ------------------------------------------------------------------ the API's rules


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"dataset": "people"}, "dataset"),
        ({"format": "pdf"}, "format"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "at most 3 years"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "must not be after"),
        ({"format": "xlsx", "compression": "gzip"}, "already compressed"),
        ({"compression": "zip"}, "compression"),
        ({"notify": ["not-an-email"]}, "not an email"),
        ({"notify": ["a@example.com\r\nBcc: x@evil.example"]}, "not an email"),
        ({"filters": {"types": ["user.exploded"]}}, "unknown event type"),
        ({"filters": {"user_type": "alien"}}, "user_type"),
        ({"dataset": "metrics", "filters": {"types": ["user.signed_up"]}}, "events dataset only"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_requests_get_a_problem_document(
    world: World, body: dict[str, Any], fragment: str
) -> None:
    answer = world.api.create(**{**SEASON, **body})
    assert answer.status == 400, answer
    assert answer.headers["content-type"] == "application/problem+json"
    assert fragment in answer.json["detail"]


def test_scopes_rate_limit_and_running_cap(world: World) -> None:
    reader = organizations.create_api_key(world.org.org_id, [Scope.EXPORTS_READ])
    read_only = Exports(world.request, world.authorizer, reader.api_key)
    assert read_only.create(**SEASON).status == 403
    assert read_only.list().status == 200

    organizations.set_limits(world.org.org_id, exports_per_hour=2, running_exports=50)
    key = organizations.create_api_key(world.org.org_id, [Scope.EXPORTS_WRITE, Scope.EXPORTS_READ])
    limited = Exports(world.request, world.authorizer, key.api_key)
    assert limited.create(**SEASON).status == 202
    second = limited.create(**SEASON)
    assert second.status == 202
    assert second.headers["ratelimit-remaining"] == "0"
    third = limited.create(**SEASON)
    assert third.status == 429
    assert int(third.headers["retry-after"]) > 0
    assert "for this API key" in third.json["detail"]
    # the limit is per API key: another key of the organization still has its own
    fresh = organizations.create_api_key(world.org.org_id, [Scope.EXPORTS_WRITE])
    assert Exports(world.request, world.authorizer, fresh.api_key).create(**SEASON).status == 202
    world.run()

    organizations.set_limits(world.org.org_id, exports_per_hour=1000, running_exports=2)
    first, second = world.api.create(**SEASON), world.api.create(**SEASON)
    assert first.status == second.status == 202
    capped = world.api.create(**SEASON)
    assert capped.status == 429
    assert "queued or running" in capped.json["detail"]
    assert world.api.cancel(first.json["id"]).status == 200
    assert world.api.create(**SEASON).status == 202  # a slot was freed
    world.run()
    organizations.set_limits(world.org.org_id, exports_per_hour=1000, running_exports=50)


def test_list_is_paginated_newest_first(world: World) -> None:
    made = [world.api.create(format="csv", **SEASON).json["id"] for _ in range(3)]
    world.run()
    first = world.api.list(limit="2").json
    assert [e["id"] for e in first["exports"]] == made[::-1][:2]
    second = world.api.list(limit="2", cursor=first["next_cursor"]).json
    assert second["exports"][0]["id"] == made[0]
    assert world.api.list(limit="0").status == 400
    assert world.api.list(cursor="bogus").status == 400


def test_another_organizations_export_is_not_found_anywhere(world: World) -> None:
    job = world.export(format="csv", **SEASON)
    other = organizations.create_organization("Another Tenant Ltd")
    intruder = Exports(world.request, world.authorizer, org_key(other))

    assert intruder.get(job["id"]).status == 404
    assert intruder.cancel(job["id"]).status == 404
    assert intruder.download(job["id"]).status == 404
    assert job["id"] not in [e["id"] for e in intruder.list().json["exports"]]
    # a valid token of one export does not open another
    from success_metrics.exports import links

    theirs = intruder.create(format="csv", **SEASON).json["id"]
    world.run()
    token = links.make(jobs.get(other.org_id, theirs), expires_at=2_000_000_000)
    assert world.api.download(job["id"], token=token, use_key=False).status == 404
    assert world.api.get(job["id"]).json["status"] == "succeeded"


def test_a_token_with_a_non_ascii_signature_is_refused_not_a_500(world: World) -> None:
    from success_metrics.exports import links

    job = world.export(format="csv", **SEASON)
    token = links.make(jobs.get(world.org.org_id, job["id"]), expires_at=2**31)
    answer = world.api.download(job["id"], token=token[:-1] + "é", use_key=False)
    assert answer.status == 401, answer
    assert answer.json["type"].endswith("/unauthenticated")
