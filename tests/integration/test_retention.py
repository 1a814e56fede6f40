"""Retention holds: records that carry personal data never outlive the organization's retention,
and reads ignore what is past its expiry before TTL deletes it (a frozen clock stands in)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devstack.provision import Stack
from devstack.sink import Sink
from success_metrics import caches
from success_metrics.gdpr import erasure
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import organizations
from success_metrics.sync import delivery_log
from tests.integration.conftest import scan_all
from tests.support import post_events
from tests.support.gdpr import ask, erasure_api, work
from tests.support.sync import recent_events, run_sync

DAY = 86400


@pytest.fixture(autouse=True)
def _fresh_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_CACHE_SECONDS", "0")
    caches.reset_all()


def frozen_at(monkeypatch: pytest.MonkeyPatch, moment: float) -> None:
    """Every `time.time()` answers `moment` (what TTL has not deleted yet is still stored)."""
    monkeypatch.setattr(time, "time", lambda: moment)


def test_a_short_retention_caps_the_delivery_log_and_reads_skip_expired_entries(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    sink: Sink,
    admin_setup: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    organizations.set_limits(org.org_id, retention_days=3)  # shorter than DELIVERY_LOG_DAYS
    post_events(webhook_handler, org.org_id, org.webhook_secret, {"events": recent_events(3)})
    now = time.time()
    run_sync(stack)

    items = scan_all(stack.physical["DeliveriesTable"]["Ref"])
    assert items
    assert all(int(i["expires_at"]["N"]) <= now + 3 * DAY + 60 for i in items)
    listed = delivery_log.list_deliveries(org.org_id)
    assert listed
    delivery_id = listed[0]["delivery_id"]
    frozen_at(monkeypatch, now + 4 * DAY)
    assert delivery_log.list_deliveries(org.org_id) == []
    assert delivery_log.summary(org.org_id, delivery_id) is None


def test_export_records_and_erasure_receipts_expire_with_the_retention(
    stack: Stack,
    org: CreatedOrganization,
    authorizer_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    organizations.set_limits(org.org_id, retention_days=2)
    asked = ask(authorizer_handler, org.api_key, {"user_id": "usr_ben"})
    assert asked.status == 202, asked
    created = erasure_api(authorizer_handler, org.api_key, "POST", body={"user_id": "usr_ana"})
    work(stack)
    now = time.time()
    receipt = erasure.get(org.org_id, created.json["erasure_id"])
    assert receipt.status == "succeeded"
    [item] = [
        i
        for i in scan_all(stack.physical["PrivacyTable"]["Ref"])
        if i["pk"]["S"] == f"erasure#{org.org_id}"
    ]
    assert int(item["expires_at"]["N"]) <= now + 2 * DAY + 60
    assert "subject" not in item  # the encrypted user id went with the last save
    [record] = [
        i
        for i in scan_all(stack.physical["ExportsTable"]["Ref"])
        if i["sk"]["S"] == f"job#{asked.json['id']}"
    ]
    assert int(record["expires_at"]["N"]) <= now + 2 * DAY + 60  # not the usual 90 days
    assert jobs.find(org.org_id, asked.json["id"]) is not None

    frozen_at(monkeypatch, now + 3 * DAY)
    gone = erasure_api(authorizer_handler, org.api_key, "GET", created.json["erasure_id"])
    assert gone.status == 404
    assert jobs.find(org.org_id, asked.json["id"]) is None
