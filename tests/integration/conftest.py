"""Handlers in-process against moto's mock_aws(), with resources created from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack import iam
from devstack.provision import Stack
from devstack.runner import PLATFORM_URL_SETTINGS
from devstack.sink import Sink
from success_metrics import caches
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from tests.integration.secured import secured_stack
from tests.support.sync import configure


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Stack]:
    # The in-process drivers redeliver a failed export message at once; the backoff delay itself
    # is tested in test_exports.py::test_a_deterministically_failing_export_ends_failed_soon.
    monkeypatch.setenv("EXPORT_RETRY_SECONDS", "0")
    with secured_stack(monkeypatch) as (created, enforcement):
        yield created
        iam.check_and_record(enforcement, request.node.nodeid)


@pytest.fixture
def org(stack: Stack) -> CreatedOrganization:
    return organizations.create_organization("Bloom & Veil Weddings")


@pytest.fixture
def other_org(stack: Stack) -> CreatedOrganization:
    return organizations.create_organization("Another Tenant Ltd")


@pytest.fixture
def webhook_handler(stack: Stack) -> Any:
    from webhook_receive import app

    return app.lambda_handler


@pytest.fixture
def admin_handler(stack: Stack) -> Any:
    from admin_api import app

    return app.lambda_handler


@pytest.fixture
def authorizer_handler(stack: Stack) -> Any:
    from api_authorizer import app

    return app.lambda_handler


def scan_all(table: str) -> list[dict[str, Any]]:
    from success_metrics import aws

    pages = aws.dynamodb().get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def drain(queue_url: str) -> list[str]:
    from success_metrics import aws

    bodies: list[str] = []
    while True:
        got = (
            aws.sqs()
            .receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300)
            .get("Messages", [])
        )
        if not got:
            return bodies
        bodies.extend(m["Body"] for m in got)


@pytest.fixture
def sink(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    """The fake platforms, with every platform URL pointed at them and loopback allowed."""
    from success_metrics.sync import worker

    with Sink() as running:
        for name in PLATFORM_URL_SETTINGS:
            monkeypatch.setenv(name, running.url)
        monkeypatch.setenv("GOOGLE_OAUTH_TOKEN_URL", f"{running.url}/token")
        monkeypatch.setenv("ALLOW_LOOPBACK_WEBHOOKS", "true")
        monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com,127.0.0.1")  # as devstack
        caches.reset_all()
        worker.client.cache_clear()
        yield running
    worker.client.cache_clear()


@pytest.fixture
def admin_setup(
    stack: Stack, org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any, sink: Sink
) -> str:
    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=1_000_000)
    return configure(admin_handler, authorizer_handler, org, sink)


@pytest.fixture
def dynamodb_requests(stack: Stack) -> Iterator[list[dict[str, Any]]]:
    """Every DynamoDB request made while the test runs (by the test, the handlers and the
    workers alike: they share one client), with its parameters."""
    from success_metrics import aws

    seen: list[dict[str, Any]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        seen.append({"operation": model.name, **params})

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.*", record)
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb.*", record)


@pytest.fixture
def fresh_profiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Profiles are read fresh, so an erasure needs no cache delay before it starts."""
    monkeypatch.setenv("CONFIG_CACHE_SECONDS", "0")
    caches.reset_all()
    yield
    caches.reset_all()


@pytest.fixture
def admin_api(admin_handler: Any, authorizer_handler: Any) -> Any:
    """`admin_api(api_key, method, target, body=None)`: one admin request through the
    authorizer and the admin function, as API Gateway would make it."""
    from tests.support.api import admin

    def call(api_key: str, method: str, target: str, body: Any = None) -> Any:
        return admin(admin_handler, authorizer_handler, api_key, method, target, body)

    return call
