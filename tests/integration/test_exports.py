"""Exports in-process: API, worker, S3 multipart, checkpoints, email (SPEC §5, issue 6)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from devstack import demo
from devstack.provision import Stack
from success_metrics import aws, caches, organizations
from success_metrics.exports import datasets, jobs, worker
from success_metrics.exports.writers import neutralise
from success_metrics.models.organizations import CreatedOrganization, Scope
from tests.integration.exports_support import (
    Exports,
    file_bytes,
    load,
    manifest,
    org_key,
    run_worker,
    with_tricky_properties,
)

SEASON = {"start": "2026-05-01", "end": "2026-10-31"}
EVENT_COUNT = 900


@pytest.fixture
def export_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Small parts (moto's minimum part size lowered with ours) so every export has many."""
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 1024)
    monkeypatch.setenv("EXPORT_PART_BYTES", "8192")
    monkeypatch.setenv("PUBLIC_API_URL", "https://api.example.test")
    caches.reset_all()
    yield stack
    caches.reset_all()


@pytest.fixture
def handlers(export_stack: Stack) -> tuple[Any, Any, Any]:
    from api_authorizer import app as authorizer
    from export_request import app as request
    from export_worker import app as work

    return request.lambda_handler, authorizer.lambda_handler, work.lambda_handler


@pytest.fixture
def events(export_stack: Stack, org: CreatedOrganization) -> list[dict[str, Any]]:
    from webhook_receive import app

    generated = with_tricky_properties(demo.generate(EVENT_COUNT, seed=11))
    load(export_stack, app.lambda_handler, org, generated)
    return generated


@pytest.fixture
def api(handlers: tuple[Any, Any, Any], org: CreatedOrganization) -> Exports:
    return Exports(handlers[0], handlers[1], org_key(org))


def export(
    api: Exports, stack: Stack, worker_handler: Any, **spec: Any
) -> dict[str, Any]:
    created = api.create(**spec)
    assert created.status == 202, created
    run_worker(stack, worker_handler)
    got = api.get(created.json["id"])
    assert got.status == 200
    return dict(got.json)


def source_rows(events: list[dict[str, Any]], **filters: Any) -> list[dict[str, Any]]:
    """What an events export must contain: the stored documents' rows, in time order."""
    rows = []
    for event in events:
        doc = dict(event, category=None, received_at=None)
        if filters.get("types") and event["type"] not in filters["types"]:
            continue
        rows.append(datasets.event_row(doc))
    rows.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    return rows


def test_csv_round_trip_equals_the_source_rows(
    api: Exports, export_stack: Stack, handlers: Any, org: CreatedOrganization, events: Any
) -> None:
    job = export(api, export_stack, handlers[2], format="csv", **SEASON)

    assert job["status"] == "succeeded", job
    data = file_bytes(org.org_id, job["id"])
    read = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    expected = source_rows(events)
    assert len(read) == len(expected) == job["progress"]["rows"] == EVENT_COUNT
    for got, want in zip(read, expected, strict=True):
        assert got["event_id"] == want["event_id"]
        assert got["occurred_at"] == want["occurred_at"].isoformat()
        props = want["properties"]
        if props is not None:
            note = props.get("note")
            if note is not None:
                assert json.loads(got["properties"])["note"] == note
        assert got["revenue_amount"] == (str(want["revenue_amount"]) if want["revenue_amount"] is not None else "")
    m = manifest(org.org_id, job["id"])
    assert m["rows"] == EVENT_COUNT
    assert m["bytes"] == len(data)
    assert m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["columns"][0] == {"name": "event_id", "type": "text"}
    assert m["range"] == {"from": "2026-05-01", "to": "2026-10-31"}
