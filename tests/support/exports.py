"""Driving exports in-process: the API through the authorizer, the worker from the queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from devstack import iam
from devstack.lambda_events import LambdaContext, http_event, sqs_record
from devstack.provision import Stack
from success_metrics import aws
from success_metrics.metrics import aggregator
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from tests.support import Response, invoke_http
from tests.support.api import authorize
from tests.support.metrics import ingest, metrics_messages

TRICKY = [
    'comma, "quoted" and\nnew line',
    '=HYPERLINK("http://evil.example","x")',
    "+1+2",
    "-2+3",
    "@SUM(A1)",
    "\tTabbed",
    "Zoë & Łukasz — 婚礼 💍",
    "",
]


def with_tricky_properties(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put text that breaks naive CSV/JSON/Excel writers into some events' properties."""
    for index, event in enumerate(events):
        if index % 3 == 0:
            event.setdefault("properties", {})["note"] = TRICKY[index % len(TRICKY)]
    return events


def load(
    stack: Stack, handler: Any, org: CreatedOrganization, events: list[dict[str, Any]]
) -> None:
    """Ingest through the signed API and aggregate the metrics (the estimate reads them)."""
    ingest(handler, org, events, batch=500)
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)
    drain(stack, "SyncQueue")


def drain(stack: Stack, queue: str) -> list[dict[str, Any]]:
    sqs = aws.sqs()
    url = stack.physical[queue]["Ref"]
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return found
        for message in got:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def call(
    handler: Any,
    authorizer: Any,
    api_key: str | None,
    method: str,
    path: str,
    route: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    with_authorizer: bool = True,
) -> Response:
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    context = authorize(authorizer, api_key)["context"] if with_authorizer else None
    event = http_event(
        method,
        path,
        route_key=f"{method} {route}",
        headers=headers,
        raw_query=urlencode(query or {}),
        body=json.dumps(body).encode() if body is not None else None,
        path_parameters=path_parameters,
        authorizer=context,
    )
    return invoke_http(handler, "ExportRequestFunction", event)


class Exports:
    """The export API of one organization's key."""

    def __init__(self, handler: Any, authorizer: Any, api_key: str) -> None:
        self.handler = handler
        self.authorizer = authorizer
        self.api_key = api_key

    def create(self, **spec: Any) -> Response:
        body = {"dataset": "events", "format": "csv", **spec}
        if "start" in body:
            body["from"] = body.pop("start")
        if "end" in body:
            body["to"] = body.pop("end")
        return call(
            self.handler,
            self.authorizer,
            self.api_key,
            "POST",
            "/v1/exports",
            "/v1/exports",
            body=body,
        )

    def list(self, **query: str) -> Response:
        return call(
            self.handler,
            self.authorizer,
            self.api_key,
            "GET",
            "/v1/exports",
            "/v1/exports",
            query=query,
        )

    def get(self, export_id: str) -> Response:
        return call(
            self.handler,
            self.authorizer,
            self.api_key,
            "GET",
            f"/v1/exports/{export_id}",
            "/v1/exports/{export_id}",
            path_parameters={"export_id": export_id},
        )

    def cancel(self, export_id: str) -> Response:
        return call(
            self.handler,
            self.authorizer,
            self.api_key,
            "DELETE",
            f"/v1/exports/{export_id}",
            "/v1/exports/{export_id}",
            path_parameters={"export_id": export_id},
        )

    def download(
        self, export_id: str, *, token: str | None = None, use_key: bool = True
    ) -> Response:
        return call(
            self.handler,
            self.authorizer,
            self.api_key if use_key else None,
            "GET",
            f"/v1/exports/{export_id}/download",
            "/v1/exports/{export_id}/download",
            query={"token": token} if token else None,
            path_parameters={"export_id": export_id},
            with_authorizer=False,
        )


def record_of(arn: str, message: dict[str, Any]) -> dict[str, Any]:
    """The Lambda SQS record of a received message (with its receive count)."""
    record: dict[str, Any] = sqs_record(
        arn,
        message["MessageId"],
        message["ReceiptHandle"],
        message["Body"],
        attributes={"ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"]},
    )
    return record


def run_worker(
    stack: Stack,
    handler: Any,
    *,
    remaining_ms: Callable[[], int] | None = None,
    max_invocations: int = 10_000,
    crashes_resend: bool = False,
    queue: str = "ExportQueue",
    function: str = "ExportWorkerFunction",
) -> int:
    """Deliver export (or `queue`'s) messages to the worker until the queue is empty (or `max_invocations`
    have run), as Lambda would: a
    message whose invocation raised or reported a failure is delivered again.

    `crashes_resend` puts a failed message back as a new one instead: chaos tests crash a
    worker dozens of times per export, far past the queue's maxReceiveCount, and they test
    resumption, not the dead-letter queue.
    """
    sqs = aws.sqs()
    url = stack.physical[queue]["Ref"]
    arn = stack.physical[queue]["Arn"]
    invocations = 0
    while invocations < max_invocations:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=1,
            VisibilityTimeout=0,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not got:
            return invocations
        message = got[0]
        record = record_of(arn, message)
        context = LambdaContext(function, 900)
        if remaining_ms is not None:
            context.get_remaining_time_in_millis = remaining_ms  # type: ignore[method-assign]
        invocations += 1
        try:
            failed = bool(handler({"Records": [record]}, context)["batchItemFailures"])
        except Exception:  # a crash: the message stays and comes back
            failed = True
        if failed and crashes_resend:
            sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
        if not failed or crashes_resend:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return invocations  # callers check the job's status


def file_bytes(org_id: str, export_id: str) -> bytes:
    from success_metrics.stores import export_jobs as jobs

    job = jobs.get(org_id, export_id)
    assert job.file is not None, job.status
    body = aws.s3().get_object(Bucket=stack_bucket(), Key=job.file.key)["Body"]
    data: bytes = body.read()
    return data


def manifest(org_id: str, export_id: str) -> dict[str, Any]:
    from success_metrics.stores import export_jobs as jobs

    job = jobs.get(org_id, export_id)
    assert job.file is not None
    body = aws.s3().get_object(Bucket=stack_bucket(), Key=job.file.manifest_key)["Body"]
    loaded: dict[str, Any] = json.loads(body.read())
    return loaded


def stack_bucket() -> str:
    from success_metrics.settings import get_settings

    return get_settings().exports_bucket


def org_key(org: CreatedOrganization) -> str:
    organizations.set_limits(org.org_id, exports_per_hour=1000, running_exports=50)
    return org.api_key
