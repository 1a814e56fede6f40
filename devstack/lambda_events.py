"""Real Lambda invocation shapes: API Gateway HTTP API payload 2.0, SQS batches, schedules,
and a context object whose remaining time is real."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT = "123456789012"
REGION = "eu-west-1"
TEXT_TYPES = ("application/json", "text/", "application/problem+json", "application/xml")


class LambdaContext:
    """What Lambda passes as `context`; `get_remaining_time_in_millis` counts down for real."""

    def __init__(self, function_name: str, timeout_seconds: float, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = datetime.now(UTC).strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith(TEXT_TYPES) or media.endswith("+json")


def http_event(
    method: str,
    raw_path: str,
    *,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw_query: str = "",
    body: bytes | None = None,
    authorizer: dict[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    api_id: str = "local",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) request event."""
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in (headers or {}).items():
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        # API Gateway joins repeated headers with commas.
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {raw_path}",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "routeKey": route_key or f"{method} {raw_path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = path_parameters
    if authorizer is not None:
        event["requestContext"]["authorizer"] = {"lambda": authorizer}
    if body is not None and body != b"":
        content_type = lowered.get("content-type", "")
        if _is_text(content_type):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def authorizer_event(
    route_arn: str, headers: dict[str, str], identity: list[str]
) -> dict[str, Any]:
    """The payload-2.0 request event a Lambda authorizer receives."""
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"accountId": ACCOUNT, "requestId": uuid.uuid4().hex},
    }


def sqs_record(
    queue_arn: str,
    message_id: str,
    receipt_handle: str,
    body: str,
    attributes: dict[str, str] | None = None,
    message_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": attributes or {},
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message_attributes or {}).items()
        },
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def schedule_event(rule_arn: str) -> dict[str, Any]:
    """The EventBridge 'Scheduled Event' a Schedule source delivers."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


def ingest_event(org_id: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The HTTP API event for POST /v1/organizations/{org_id}/events with these headers."""
    return http_event(
        "POST",
        f"/v1/organizations/{org_id}/events",
        route_key="POST /v1/organizations/{org_id}/events",
        path_parameters={"org_id": org_id},
        headers=headers,
        body=body,
    )


def signed_ingest_event(org_id: str, secret: str, body: bytes) -> dict[str, Any]:
    """The same, signed now with `secret` under a fresh webhook-id."""
    from success_metrics import signing

    headers = signing.sign_headers(secret, "msg_" + uuid.uuid4().hex, int(time.time()), body)
    headers["content-type"] = "application/json"
    return ingest_event(org_id, headers, body)
