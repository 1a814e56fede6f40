"""Unauthenticated requests (issue 15.8): the same work for an unknown organization as for a bad
signature of a known one, bounded however many arrive, and no write on any such path."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.lambda_events import http_event
from devstack.provision import Stack
from success_metrics import aws
from success_metrics.exports.models import ExportRequest
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import organizations
from tests.support import Response, invoke_http, post_events, sample_event

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
FLOOD = 25


@pytest.fixture
def calls(stack: Stack) -> Iterator[Counter[str]]:
    """Every DynamoDB and KMS operation the handlers make while the test runs."""
    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.name] += 1

    clients = [aws.dynamodb(), aws.kms()]
    for client in clients:
        client.meta.events.register("before-call", count)
    yield seen
    for client in clients:
        client.meta.events.unregister("before-call", count)


def test_bad_signatures_cost_what_unknown_organizations_cost(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    webhook_handler: Any,
    calls: Counter[str],
) -> None:
    # A real sender has been seen: this instance holds the profile and the decrypted secret.
    assert (
        post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event()).status == 202
    )
    calls.clear()

    for _ in range(FLOOD):
        answer = post_events(webhook_handler, org.org_id, other_org.webhook_secret, sample_event())
        assert answer.status == 401
    known = Counter(calls)
    calls.clear()
    for _ in range(FLOOD):
        answer = post_events(webhook_handler, "org_0000000000000000", org.webhook_secret, None)
        assert answer.status == 401
    unknown = Counter(calls)

    # At most one profile read each, whatever the flood; no KMS call; no write.
    assert known["GetItem"] <= 1, known
    assert unknown["GetItem"] <= 1, unknown
    assert known["Decrypt"] == unknown["Decrypt"] == 0
    assert not (set(known) | set(unknown)) & WRITES
    assert set(known) <= {"GetItem"}
    assert set(unknown) <= {"GetItem"}


def test_a_secret_rotated_elsewhere_is_still_accepted_at_once(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    assert (
        post_events(webhook_handler, org.org_id, org.webhook_secret, sample_event()).status == 202
    )
    new_secret = organizations.rotate_webhook_secret(org.org_id)  # by another instance, say

    answer = post_events(webhook_handler, org.org_id, new_secret, sample_event())

    assert answer.status == 202, answer


def download(export_id: str, token: str) -> Response:
    from urllib.parse import urlencode

    handler = importlib.import_module("export_request.app").lambda_handler
    event = http_event(
        "GET",
        f"/v1/exports/{export_id}/download",
        route_key="GET /v1/exports/{export_id}/download",
        path_parameters={"export_id": export_id},
        raw_query=urlencode({"token": token}),
    )
    return invoke_http(handler, "ExportRequestFunction", event)


@pytest.mark.parametrize("legacy", [False, True], ids=["with-key", "org-made-before-keys"])
def test_a_forged_download_link_writes_nothing(
    stack: Stack, org: CreatedOrganization, calls: Counter[str], legacy: bool
) -> None:
    if legacy:  # an organization created before pseudonym keys were made with it
        profile = organizations.get_organization(org.org_id, fresh=True)
        organizations.save_profile(profile.model_copy(update={"pseudonym_key": None}))
    now = 1_790_000_000.0
    job = jobs.create(
        org.org_id,
        org.key_id,
        ExportRequest.model_validate(
            {"dataset": "events", "format": "csv", "from": "2026-06-01", "to": "2026-06-30"}
        ),
        jobs.new_export_id(now),
        now,
    )
    calls.clear()

    forged = f"{org.org_id}.{job.export_id}.9999999999.1.{'A' * 43}"
    answers = [download(job.export_id, forged).status for _ in range(3)]

    assert answers == [401, 401, 401]
    assert not set(calls) & WRITES, calls
    key = organizations.get_organization(org.org_id, fresh=True).pseudonym_key
    assert (key is None) is legacy


def test_a_new_organization_has_its_pseudonym_key_from_the_start(
    stack: Stack, org: CreatedOrganization
) -> None:
    assert organizations.get_organization(org.org_id, fresh=True).pseudonym_key is not None
