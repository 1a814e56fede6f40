"""The HTTP API's route table: one entry per route, the single list the OpenAPI document, the
tenant-isolation matrix and the fuzz tests are generated from. Tests check it against
`template.yaml` and against the routes each function's resolver registers, so a route cannot be
added in one place and forgotten in another.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from success_metrics.models.organizations import Scope

Auth = Literal["api_key", "signature", "link_or_api_key", "public"]


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    schema: Any = str  # a type, or typing.Annotated / Literal
    required: bool = False
    description: str = ""
    alias: str | None = None

    @property
    def wire_name(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI style: /v1/exports/{export_id}
    function: str  # the template's logical id
    operation_id: str
    summary: str
    auth: Auth
    scope: Scope | None
    status: int
    # What the route reads or changes, for the tenant-isolation matrix: a route about one
    # resource of the caller's organization must answer 404 for another organization's.
    resource: str | None = None
    body: str | None = None  # "module:Model" of the JSON request body
    response: str | None = None  # "module:Model" of the success answer
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 404, 429)
    # Other success statuses, answered with the same model.
    also: tuple[int, ...] = ()

    @property
    def path_params(self) -> list[Param]:
        return [p for p in self.params if p.where == "path"]


_DEST = Param("dest_id", "path", required=True, description="the destination's id")
_EXPORT = Param("export_id", "path", required=True, description="the export's id (exp_…)")
_ERASURE = Param("erasure_id", "path", required=True, description="the erasure's id (era_…)")
_SIGNED = (
    Param("org_id", "path", required=True, description="the sending organization"),
    Param("webhook-id", "header", required=True, description="unique per delivery"),
    Param("webhook-timestamp", "header", required=True, description="Unix seconds"),
    Param("webhook-signature", "header", required=True, description="v1,<base64 HMAC>"),
)

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/organizations/{org_id}/events",
        "WebhookReceiveFunction",
        "sendEvents",
        "Send one event or a batch, signed with the Standard Webhooks scheme",
        "signature",
        None,
        202,
        body="success_metrics.models.api:SendEventsBody",
        response="success_metrics.models.events:IngestResult",
        params=_SIGNED,
        errors=(400, 401, 409, 413, 415, 429),
    ),
    Route(
        "GET",
        "/v1/organization",
        "AdminApiFunction",
        "getOrganization",
        "The caller's organization: limits, retention, the key's scopes",
        "api_key",
        None,
        200,
        resource="organization",
        response="success_metrics.models.organizations:OrganizationView",
        errors=(401,),
    ),
    Route(
        "PUT",
        "/v1/organization/settings",
        "AdminApiFunction",
        "putOrganizationSettings",
        "Change the organization's anonymisation settings (those left out keep their value)",
        "api_key",
        Scope.CONFIG_WRITE,
        200,
        resource="organization",
        body="success_metrics.models.organizations:PrivacySettingsChange",
        response="success_metrics.models.organizations:OrganizationSettings",
        errors=(400, 401, 403),
    ),
    Route(
        "GET",
        "/v1/audit",
        "AdminApiFunction",
        "listAudit",
        "The organization's audit log, newest first (every admin request and smctl change)",
        "api_key",
        Scope.AUDIT_READ,
        200,
        resource="audit",
        response="success_metrics.models.audit:AuditList",
        params=(
            Param("since", "query", description="ISO 8601 date or time (inclusive)", alias="from"),
            Param("until", "query", description="ISO 8601 date or time (inclusive)", alias="to"),
            Param("key_id", "query", description="only this API key's requests"),
            Param("route", "query", description="a route template, e.g. /v1/exports/{export_id}"),
            Param("method", "query", description="GET, PUT, POST, DELETE or CLI"),
            Param("status", "query", description="an HTTP status (403) or a class (4xx)"),
            Param("limit", "query", int, description="1 to 1000 (default 100)"),
            Param("cursor", "query", description="the next_cursor of the previous page"),
        ),
        errors=(400, 401, 403),
    ),
    Route(
        "GET",
        "/v1/destinations",
        "AdminApiFunction",
        "listDestinations",
        "The organization's destinations (secrets are never returned)",
        "api_key",
        Scope.CONFIG_WRITE,
        200,
        resource="destination",
        response="success_metrics.models.api:DestinationList",
        errors=(401, 403),
    ),
    Route(
        "GET",
        "/v1/destinations/{dest_id}",
        "AdminApiFunction",
        "getDestination",
        "One destination",
        "api_key",
        Scope.CONFIG_WRITE,
        200,
        resource="destination",
        response="success_metrics.models.destinations:DestinationView",
        params=(_DEST,),
        errors=(401, 403, 404),
    ),
    Route(
        "PUT",
        "/v1/destinations/{dest_id}",
        "AdminApiFunction",
        "putDestination",
        "Create or replace a destination; secrets are write-only",
        "api_key",
        Scope.CONFIG_WRITE,
        200,
        resource="destination",
        body="success_metrics.models.destinations:DestinationRequest",
        response="success_metrics.models.destinations:DestinationView",
        params=(_DEST,),
        errors=(400, 401, 403, 415),
    ),
    Route(
        "DELETE",
        "/v1/destinations/{dest_id}",
        "AdminApiFunction",
        "deleteDestination",
        "Remove a destination",
        "api_key",
        Scope.CONFIG_WRITE,
        204,
        resource="destination",
        params=(_DEST,),
        errors=(401, 403, 404),
    ),
    Route(
        "GET",
        "/v1/deliveries",
        "AdminApiFunction",
        "listDeliveries",
        "The delivery log, or where one event stands at each destination",
        "api_key",
        Scope.CONFIG_WRITE,
        200,
        resource="delivery",
        response="success_metrics.models.api:DeliveryList",
        params=(
            Param("status", "query", description="pending, succeeded, partial, failed…"),
            Param("limit", "query", int, description="1 to 1000 (default 100) per page"),
            Param("cursor", "query", description="next_cursor of the previous page"),
            Param("event_id", "query", description="where this event stands"),
            Param("dest_id", "query", description="only this destination's deliveries"),
            Param("since", "query", description="last attempt at or after (ISO 8601, UTC)"),
            Param("until", "query", description="last attempt at or before (ISO 8601, UTC)"),
        ),
        errors=(400, 401, 403),
    ),
    Route(
        "POST",
        "/v1/deliveries/{delivery_id}/retry",
        "AdminApiFunction",
        "retryDelivery",
        "Queue a delivery again, its failed events included",
        "api_key",
        Scope.CONFIG_WRITE,
        202,
        resource="delivery",
        response="success_metrics.models.api:DeliveryRetried",
        params=(Param("delivery_id", "path", required=True),),
        errors=(401, 403, 404, 409),
    ),
    Route(
        "GET",
        "/v1/metrics",
        "MetricsApiFunction",
        "getMetrics",
        "Success metrics for a date range and granularity",
        "api_key",
        Scope.METRICS_READ,
        200,
        resource="metrics",
        response="success_metrics.models.api:MetricsAnswer",
        params=(
            Param("start", "query", str, True, "first day, YYYY-MM-DD", alias="from"),
            Param("end", "query", str, True, "last day, YYYY-MM-DD", alias="to"),
            Param("granularity", "query", description="day, week, month or season"),
            Param("breakdown", "query", description="user_type, channel or country"),
        ),
        errors=(400, 401, 403),
    ),
    *(
        Route(
            "GET",
            f"/v1/metrics/{name}",
            "MetricsApiFunction",
            operation,
            summary,
            "api_key",
            Scope.METRICS_READ,
            200,
            resource="metrics",
            response=f"success_metrics.models.api:{answer}",
            params=(
                Param("start", "query", str, True, f"{first}, YYYY-MM-DD", alias="from"),
                Param("end", "query", str, True, f"{last}, YYYY-MM-DD", alias="to"),
            ),
            errors=(400, 401, 403),
        )
        for name, operation, summary, answer, first, last in (
            (
                "cohorts",
                "getCohorts",
                "Retention grids: suppliers by first-paid month (logo and MRR), couples by "
                "signup month",
                "CohortsAnswer",
                "a day of the first cohort month",
                "the last day of the grid",
            ),
            (
                "funnel",
                "getFunnel",
                "The couple funnel: signed up, wedding created, vendor searched, vendor booked",
                "FunnelAnswer",
                "the first signup day",
                "the last signup day",
            ),
        )
    ),
    Route(
        "POST",
        "/v1/exports",
        "ExportRequestFunction",
        "createExport",
        "Request an export (CSV, JSON, NDJSON or Excel), emailed when ready",
        "api_key",
        Scope.EXPORTS_WRITE,
        202,
        resource="export",
        body="success_metrics.exports.models:ExportRequest",
        response="success_metrics.exports.models:ExportView",
        errors=(400, 401, 403, 415, 429),
    ),
    Route(
        "GET",
        "/v1/exports",
        "ExportRequestFunction",
        "listExports",
        "The organization's exports, newest first",
        "api_key",
        Scope.EXPORTS_READ,
        200,
        resource="export",
        response="success_metrics.models.api:ExportList",
        params=(
            Param("limit", "query", int, description="1 to 100"),
            Param("cursor", "query", description="next_cursor of the previous page"),
        ),
        errors=(400, 401, 403),
    ),
    Route(
        "GET",
        "/v1/exports/{export_id}",
        "ExportRequestFunction",
        "getExport",
        "An export's status and progress",
        "api_key",
        Scope.EXPORTS_READ,
        200,
        resource="export",
        response="success_metrics.exports.models:ExportView",
        params=(_EXPORT,),
        errors=(401, 403, 404),
    ),
    Route(
        "DELETE",
        "/v1/exports/{export_id}",
        "ExportRequestFunction",
        "cancelExport",
        "Cancel a running export, or withdraw a finished one's file",
        "api_key",
        Scope.EXPORTS_WRITE,
        200,
        resource="export",
        response="success_metrics.exports.models:ExportView",
        params=(_EXPORT,),
        errors=(401, 403, 404, 409),
    ),
    Route(
        "GET",
        "/v1/exports/{export_id}/download",
        "ExportRequestFunction",
        "downloadExport",
        "Redirect to the file (an API key, or the emailed link's token)",
        "link_or_api_key",
        Scope.EXPORTS_READ,
        302,
        resource="export",
        params=(_EXPORT, Param("token", "query", description="the emailed link's token")),
        errors=(401, 403, 404, 409, 410),
    ),
    Route(
        "GET",
        "/v1/gdpr/users/{user_id}/consent",
        "GdprApiFunction",
        "getConsent",
        "A user's current consent per purpose, and its history",
        "api_key",
        Scope.GDPR_WRITE,
        200,
        resource="consent",
        response="success_metrics.models.api:ConsentView",
        params=(Param("user_id", "path", required=True),),
        errors=(401, 403, 404),
    ),
    Route(
        "POST",
        "/v1/gdpr/access-requests",
        "GdprApiFunction",
        "createAccessRequest",
        "Everything held on one user, as a JSON export, emailed",
        "api_key",
        Scope.GDPR_WRITE,
        202,
        resource="export",
        body="success_metrics.models.api:AccessRequestBody",
        response="success_metrics.exports.models:ExportView",
        errors=(400, 401, 403, 415, 429),
    ),
    Route(
        "POST",
        "/v1/gdpr/erasures",
        "GdprApiFunction",
        "createErasure",
        "Erase a user everywhere (202; 200 with the erasure already under way)",
        "api_key",
        Scope.GDPR_WRITE,
        202,
        resource="erasure",
        body="success_metrics.models.api:ErasureRequestBody",
        response="success_metrics.models.api:ErasureView",
        errors=(400, 401, 403, 415, 429),
        also=(200,),
    ),
    Route(
        "GET",
        "/v1/gdpr/erasures/{erasure_id}",
        "GdprApiFunction",
        "getErasure",
        "An erasure's progress per system; once finished, its receipt",
        "api_key",
        Scope.GDPR_WRITE,
        200,
        resource="erasure",
        response="success_metrics.models.api:ErasureView",
        params=(_ERASURE,),
        errors=(401, 403, 404),
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        "OpenApiFunction",
        "getOpenApi",
        "This document",
        "public",
        None,
        200,
        response="success_metrics.models.api:OpenApiDocument",
        errors=(),
    ),
)


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)))


_PATTERNS = [(r, _pattern(r.path)) for r in ROUTES]


def match(method: str, path: str) -> Route | None:
    """The route a request reached (its template, scope and auth), or None."""
    for route, pattern in _PATTERNS:
        if route.method == method.upper() and pattern.fullmatch(path):
            return route
    return None


def resolve(reference: str) -> Any:
    """The object a "module:Name" reference names."""

    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
