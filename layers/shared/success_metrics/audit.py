"""The audit log (SPEC §9): who did what to an organization, when, and how it ended.

Every admin request is recorded by the shared request middleware (`middleware`, installed by
`admin.require_principal` and the export routes), and every `smctl` command that changes an
organization, a key, a secret or a destination by `cli_operation`. A request that changes
something writes its record *before* it runs (outcome `pending`) and completes it afterwards, so
no change happens unaudited: when the first write fails the request answers 503 and changes
nothing; when the completion fails the record stays `pending` (the attempt is on record, its
outcome is not) and the request answers 503 as well. A read writes one record after it ran.

A record never holds a credential, a secret, a token, a request or response body, or a user id
(personal data the erasure of a user would have to find): only the route template, the ids of the
resources it named that are not personal, the key id, the status and the caller's network facts.

Items: table `AUDIT_TABLE`, `org_id` (hash) and `sk = <ISO time>#<request id>` (range), expired
by DynamoDB TTL on `expires_at` after `AUDIT_DAYS`.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import platform
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from success_metrics.errors import SuccessMetricsError, ValidationFailedError
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.routes import match
from success_metrics.settings import get_settings
from success_metrics.stores import audit as audit_store

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

SUBJECT = "audit_subject"
# Path parameters that name a person: recorded as present, never by value.
PERSONAL_PARAMS = frozenset({"user_id", "anonymous_id"})
REDACTED = "(personal data, not recorded)"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_USER_AGENT = 256
MAX_PAGE = 1000
# Pages of the table one listing reads at most before it answers with a cursor.
MAX_QUERY_PAGES = 10
_CURSOR = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#[\x21-\x7e]{1,128}")
_STATUS = re.compile(r"[1-5](\d\d|xx)")


class AuditUnavailableError(SuccessMetricsError):
    """The audit log could not be written: the request is refused rather than left unaudited."""

    status = 503
    slug = "audit-unavailable"
    title = "Audit log unavailable"

    def __init__(
        self, detail: str = "the audit log could not be written; nothing was changed"
    ) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": "5"}


@dataclass
class Subject:
    """Who acts: the organization and the key (or the link, or the operator) it acts with."""

    org_id: str
    key_id: str


@dataclass
class Entry:
    org_id: str
    key_id: str
    method: str
    route: str
    request_id: str
    resource_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    at: float = field(default_factory=time.time)
    sk: str = ""

    def __post_init__(self) -> None:
        if not self.sk:
            self.sk = f"{_iso(self.at)}#{self.request_id}"

    def item(self, status: int | None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "org_id": self.org_id,
            "sk": self.sk,
            "key_id": self.key_id,
            "method": self.method,
            "route": self.route,
            "request_id": self.request_id,
            "at": _iso(self.at),
            "outcome": outcome(status),
            "expires_at": int(self.at) + get_settings().audit_days * 86400,
        }
        if status is not None:
            item["status"] = status
        for name in ("resource_id", "source_ip", "user_agent"):
            value = getattr(self, name)
            if value:
                item[name] = value
        return item


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def outcome(status: int | None) -> str:
    if status is None:
        return "pending"
    if status < 400:
        return "succeeded"
    return "refused" if status < 500 else "failed"


def _write(entry: Entry, status: int | None) -> None:
    # boto3 and botocore load on first use, not at import (cold start)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if status is None or entry.method in READ_METHODS:
            audit_store.put(entry.item(status))
        else:
            audit_store.complete(entry.org_id, entry.sk, status, outcome(status), entry.resource_id)
    except (ClientError, BotoCoreError) as exc:
        code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
        logger.error("audit write failed", extra={"error_code": code, "route": entry.route})
        metrics.add_metric(name="AuditWriteFailed", unit=MetricUnit.Count, value=1)
        raise AuditUnavailableError(
            "the audit log could not be written; nothing was changed"
            if status is None
            else "the audit log could not record the outcome; the request's outcome is unknown"
        ) from exc


def error_status(error: BaseException) -> int:
    if isinstance(error, SuccessMetricsError):
        return error.status
    # boto3 and botocore load on first use, not at import (cold start)
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError) and error.response["Error"]["Code"] in {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    }:
        return 503
    return 500


@contextmanager
def audited(entry: Entry) -> Iterator[Callable[[int], None]]:
    """Record `entry` around the work in the block; the block reports its status through the
    callable it is given (an exception reports its own)."""
    if entry.method not in READ_METHODS:
        _write(entry, None)
    status: list[int] = []
    try:
        yield status.append
    except BaseException as error:
        _write(entry, error_status(error))
        raise
    _write(entry, status[-1] if status else 200)


def _respond(entry: Entry, response: Response[Any], report: Callable[[int], None]) -> None:
    entry.resource_id = entry.resource_id or _created(entry, response)
    report(response.status_code)


# ------------------------------------------------------------------ the HTTP middleware


def set_subject(app: APIGatewayHttpResolver, org_id: str, key_id: str) -> None:
    """Name who acts, for a route that authenticates by itself (the download link)."""
    app.append_context(**{SUBJECT: Subject(org_id, key_id)})  # type: ignore[no-untyped-call]


def _entry(app: APIGatewayHttpResolver, subject: Subject) -> Entry:

    event = app.current_event
    method = event.http_method.upper()
    route = match(method, event.raw_path)
    values = dict(event.path_parameters or {})
    resource: str | None = None
    if route is not None:
        named = [p.name for p in route.path_params]
        if named:
            resource = REDACTED if named[-1] in PERSONAL_PARAMS else values.get(named[-1])
    http = event.request_context.http
    return Entry(
        org_id=subject.org_id,
        key_id=subject.key_id,
        method=method,
        route=route.path if route else "(no route)",
        request_id=event.request_context.request_id or secrets.token_hex(8),
        resource_id=resource[:128] if resource else None,
        source_ip=http.source_ip or None,
        user_agent=(http.user_agent or "")[:MAX_USER_AGENT] or None,
    )


def _created(entry: Entry, response: Response[Any]) -> str | None:
    """The id of what a creating request made, from the path of its Location header (never
    the query: a download's Location is a presigned URL)."""

    location = (response.headers or {}).get("Location")
    if entry.method != "POST" or not isinstance(location, str) or not location:
        return None
    path = urlsplit(location).path.rstrip("/")
    return path.rsplit("/", 1)[-1][:128] if path.startswith("/v1/") else None


def middleware(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Audit the request when it has a subject (set by the authentication middleware before
    this one runs, or by the route itself); unauthenticated requests are in the access log."""
    subject: Subject | None = app.context.get(SUBJECT)
    if subject is not None:
        entry = _entry(app, subject)
        with audited(entry) as report:
            response = next_middleware(app)
            _respond(entry, response, report)
        return response
    try:
        response = next_middleware(app)
    except BaseException as error:
        late: Subject | None = app.context.get(SUBJECT)
        if late is not None:  # the route authenticated its caller, then refused the request
            _write(_entry(app, late), error_status(error))
        raise
    late = app.context.get(SUBJECT)
    if late is not None:
        entry = _entry(app, late)
        entry.resource_id = entry.resource_id or _created(entry, response)
        _write(entry, response.status_code)
    return response


# ------------------------------------------------------------------ smctl


@contextmanager
def cli_operation(org_id: str, command: str, resource_id: str | None = None) -> Iterator[None]:
    """Audit an `smctl` command that changes `org_id`: written before it runs, completed after."""

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    entry = Entry(
        org_id=org_id,
        key_id=f"operator:{user}",
        method="CLI",
        route=f"smctl {command}",
        request_id="cli_" + secrets.token_hex(8),
        resource_id=resource_id,
        user_agent=f"smctl ({platform.node()[:64]})",
    )
    with audited(entry) as report:
        yield
        report(200)


# ------------------------------------------------------------------ reading


def _parse_time(name: str, value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailedError(f"{name} is an ISO 8601 date or time, e.g. 2026-06-01") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _iso(moment.timestamp())


def _cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str:
    try:
        sk = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailedError("cursor is not one this API gave") from exc
    if not _CURSOR.fullmatch(sk):
        raise ValidationFailedError("cursor is not one this API gave")
    return sk


ALLOWED_PARAMS = frozenset({"from", "to", "key_id", "route", "method", "status", "limit", "cursor"})


def list_records(org_id: str, params: dict[str, str]) -> dict[str, Any]:
    """Newest first: `{"records": [...], "next_cursor": str | None}`, filtered by time range,
    key, route template, method and status (an exact code or a class such as `4xx`)."""
    unknown = set(params) - ALLOWED_PARAMS
    if unknown:
        raise ValidationFailedError(f"unknown query parameters: {', '.join(sorted(unknown))}")
    try:
        limit = int(params.get("limit", "100"))
    except ValueError as exc:
        raise ValidationFailedError(f"limit is a whole number from 1 to {MAX_PAGE}") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailedError(f"limit is a whole number from 1 to {MAX_PAGE}")
    low = _parse_time("from", params["from"]) if "from" in params else "0"
    high = _parse_time("to", params["to"]) + "~" if "to" in params else "9999"
    if low > high:
        raise ValidationFailedError("from is after to")
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    filters: list[str] = []
    for name in ("key_id", "route", "method"):
        if name in params:
            if not params[name] or len(params[name]) > 256:
                raise ValidationFailedError(f"{name} is 1 to 256 characters")
            names[f"#{name}"] = name
            values[f":{name}"] = params[name].upper() if name == "method" else params[name]
            filters.append(f"#{name} = :{name}")
    if "status" in params:
        status = params["status"].lower()
        if not _STATUS.fullmatch(status):
            raise ValidationFailedError("status is an HTTP status (e.g. 403) or a class (4xx)")
        names["#status"] = "status"
        if status.endswith("xx"):
            values[":slo"], values[":shi"] = int(status[0]) * 100, int(status[0]) * 100 + 99
            filters.append("#status BETWEEN :slo AND :shi")
        else:
            values[":status"] = int(status)
            filters.append("#status = :status")
    start = _uncursor(params["cursor"]) if "cursor" in params else None
    found, last = audit_store.query(
        org_id, low, high, filters, names, values, start, limit, MAX_QUERY_PAGES
    )
    records = [_public(_numbers(i)) for i in found]
    return {"records": records, "next_cursor": _cursor(last) if last else None}


def _numbers(item: dict[str, Any]) -> dict[str, Any]:
    for name in ("status", "expires_at"):
        if name in item:
            item[name] = int(item[name])
    return item


def _public(item: dict[str, Any]) -> dict[str, Any]:
    item.pop("sk", None)
    return item
