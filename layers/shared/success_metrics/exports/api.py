"""The export API's logic: create, list, inspect, cancel and download (SPEC §5).

The organization always comes from the credential: an API key (through the authorizer, or
checked here for `/download`, which has no authorizer so that emailed links work) or a signed
download token. Another organization's export id is simply not found.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from success_metrics.authorizer import bearer_token
from success_metrics.errors import (
    ConflictError,
    GoneError,
    UnauthenticatedError,
    ValidationFailedError,
)
from success_metrics.exports import access, finish, links, worker
from success_metrics.exports.models import (
    ACTIVE,
    Dataset,
    ExportRequest,
    ExportView,
    Progress,
    Status,
)
from success_metrics.http import Principal, parse_model
from success_metrics.models.organizations import Scope
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import organizations, rate_limit
from success_metrics.stores.export_files import ExportFiles


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def view(job: jobs.Job) -> dict[str, Any]:
    r = job.request
    estimate = job.estimated_rows
    if job.status is Status.SUCCEEDED:
        percent: float | None = 100.0
    elif estimate:
        percent = round(min(99.9, 100.0 * job.rows / estimate), 1)
    elif job.status is Status.RUNNING:
        percent = 0.0
    else:
        percent = None
    file = None
    if job.file is not None and not job.links_revoked:
        file = {
            "name": job.file.name,
            "rows": job.file.rows,
            "bytes": job.file.bytes,
            "sha256": job.file.sha256,
            "expires_at": _iso(job.file.expires_at),
        }
    self_link = f"/v1/exports/{job.export_id}"
    answer = ExportView(
        id=job.export_id,
        status=job.status,
        dataset=r.dataset,
        format=r.format,
        compression=r.compression,
        range={"from": r.start.isoformat(), "to": r.end.isoformat()},
        filters=r.filters.model_dump(mode="json", exclude_none=True),
        granularity=r.granularity.value,
        notify=r.notify,
        progress=Progress(rows=job.rows, bytes=job.bytes, estimated_rows=estimate, percent=percent),
        created_at=_iso(job.created_at) or "",
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        expires_at=_iso(job.file.expires_at) if job.file else None,
        error=job.error,
        file=file,
        links={"self": self_link}
        | ({"download": self_link + "/download"} if file is not None else {}),
    )
    return answer.model_dump(mode="json")


def create(caller: Principal, body: Any, now: float) -> tuple[dict[str, Any], dict[str, str]]:
    """POST /v1/exports -> (job view, rate-limit headers)."""
    caller.require(Scope.EXPORTS_WRITE)
    if not isinstance(body, dict):
        raise ValidationFailedError("the body is a JSON object describing the export")
    request = parse_model(ExportRequest, body, "export request")
    if request.dataset is Dataset.ACCESS:
        raise ValidationFailedError(
            "an access export is made with POST /v1/gdpr/access-requests (scope gdpr:write)"
        )
    return submit(caller, request, now)


def access_request(
    caller: Principal, body: Any, now: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """POST /v1/gdpr/access-requests: a JSON export of everything held on one user."""

    caller.require(Scope.GDPR_WRITE)
    today = datetime.fromtimestamp(now, tz=UTC).date()
    return submit(caller, access.request(caller.org_id, body, today), now)


def submit(
    caller: Principal, request: ExportRequest, now: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """Queue a job within the key's hourly limit and the organization's running cap."""

    org = organizations.get_organization(caller.org_id)
    export_id = jobs.new_export_id(now)
    jobs.claim_slot(org.org_id, export_id, org.limits.running_exports, now)
    try:
        quota = rate_limit.consume(
            f"{org.org_id}#{caller.key_id}",
            "export jobs",
            1,
            org.limits.exports_per_hour,
            now,
            whose="this API key",
        )
        job = jobs.create(org.org_id, caller.key_id, request, export_id, now, org.retention_days)
    except BaseException:
        jobs.release_slot(org.org_id, export_id)
        raise
    worker.send(org.org_id, export_id, "plan")
    metrics.add_metric(name="ExportsRequested", unit=MetricUnit.Count, value=1)
    logger.info(
        "export requested",
        extra={"export_id": export_id, "dataset": request.dataset, "format": request.format},
    )
    return view(job), quota.headers()


def list_exports(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    caller.require(Scope.EXPORTS_READ)
    unknown = set(params) - {"limit", "cursor"}
    if unknown:
        raise ValidationFailedError(f"unknown query parameters: {', '.join(sorted(unknown))}")
    try:
        limit = int(params.get("limit", "20"))
    except ValueError as exc:
        raise ValidationFailedError("limit is a whole number from 1 to 100") from exc
    if not 1 <= limit <= 100:
        raise ValidationFailedError("limit is a whole number from 1 to 100")
    found, cursor = jobs.list_jobs(caller.org_id, limit, params.get("cursor"))
    answer: dict[str, Any] = {"exports": [view(j) for j in found], "next_cursor": cursor}
    if cursor:
        answer["links"] = {"next": f"/v1/exports?limit={limit}&cursor={cursor}"}
    return answer


def get_export(caller: Principal, export_id: str) -> dict[str, Any]:
    caller.require(Scope.EXPORTS_READ)
    return view(jobs.get(caller.org_id, export_id))


def cancel(caller: Principal, export_id: str, now: float) -> dict[str, Any]:
    """Cancel a queued or running export (its workers stop at their next checkpoint and the
    upload is aborted); on a finished export, withdraw the file and revoke its links."""

    caller.require(Scope.EXPORTS_WRITE)
    job = jobs.get(caller.org_id, export_id)
    if job.status in ACTIVE:
        if jobs.cancel(job, now):
            finish.cleanup(jobs.get(caller.org_id, export_id))
            metrics.add_metric(name="ExportsCancelled", unit=MetricUnit.Count, value=1)
        return view(jobs.get(caller.org_id, export_id))
    if job.status is Status.SUCCEEDED:
        jobs.revoke_links(job)
        finish.cleanup(job, keep_file=False)
        return view(jobs.get(caller.org_id, export_id))
    if job.status is Status.CANCELLED:
        return view(job)
    raise ConflictError(f"export {export_id} has already {job.status.value}; nothing to cancel")


LINK_KEY_ID = "download-link"


def download_caller(
    export_id: str,
    headers: dict[str, str],
    params: dict[str, str],
    now: float,
    identified: Callable[[str, str], None],
) -> jobs.Job:
    """The export a download names; the credential is an API key or a signed token. Who asks
    (organization and key id, or `download-link`) is told to `identified` as soon as it is
    known, so that a refusal after that is audited too."""

    has_key = any(k.lower() == "authorization" for k in headers)
    if has_key:
        record = organizations.authenticate(bearer_token(headers))
        identified(record.org_id, record.key_id)
        caller = Principal(record.org_id, record.key_id, frozenset(s.value for s in record.scopes))
        caller.require(Scope.EXPORTS_READ)
        return jobs.get(caller.org_id, export_id)
    if params.get("token"):
        job = links.verify(params["token"], export_id, now)
        identified(job.org_id, LINK_KEY_ID)
        return job

    raise UnauthenticatedError(
        "send an API key (Authorization: Bearer <key>) or use the link from the email"
    )


def download(job: jobs.Job, now: float) -> str:
    """A fresh presigned URL for the file of `job`, when there is one."""

    export_id = job.export_id
    if job.status is not Status.SUCCEEDED:
        raise ConflictError(f"export {export_id} is {job.status.value}; there is no file yet")
    if job.file is None or job.links_revoked:
        raise GoneError(f"the file of export {export_id} has been withdrawn")
    if job.file.expires_at <= now:
        raise GoneError(f"the file of export {export_id} has expired; request a new export")
    url = ExportFiles.default().download_url(
        job.file.key, job.file.name, get_settings().download_url_seconds
    )
    metrics.add_metric(name="ExportDownloads", unit=MetricUnit.Count, value=1)
    return url
