"""Signed download links: what the export email carries instead of a credential.

A token is `<org>.<export id>.<expires>.<version>.<signature>`, the signature an HMAC-SHA256
over the rest with a per-organization key derived for this purpose only. It expires with the
file, and revoking an export's links bumps the job's link version, which every older token
names, so they all stop working at once. The token grants one thing: a fresh presigned URL for
that one export's file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from success_metrics.errors import GoneError, NotFoundError, UnauthenticatedError
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import organizations

PURPOSE = "export-download-links"
MAX_TOKEN = 256


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make(job: jobs.Job, expires_at: int) -> str:
    org = organizations.get_organization(job.org_id)
    payload = f"{job.org_id}.{job.export_id}.{expires_at}.{job.link_version}"
    return payload + "." + _signature(organizations.derived_key(org, PURPOSE), payload)


def url(base: str, job: jobs.Job, expires_at: int) -> str:
    token = make(job, expires_at)
    return f"{base.rstrip('/')}/v1/exports/{job.export_id}/download?token={quote(token)}"


def verify(token: str, export_id: str, now: float) -> jobs.Job:
    """The export a token grants, or 401 (not a valid token) / 404 / 410 (expired, revoked)."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN or len(parts) != 5 or not all(parts):
        raise UnauthenticatedError("the download link is not valid")
    org_id, token_export, expires, version, signature = parts
    if not (expires.isdigit() and version.isdigit()):
        raise UnauthenticatedError("the download link is not valid")
    try:
        org = organizations.get_organization(org_id)
        # No write on this unauthenticated path: an organization without a key signed nothing.
        key = organizations.derived_key(org, PURPOSE, create=False)
    except NotFoundError as exc:
        raise UnauthenticatedError("the download link is not valid") from exc
    payload = ".".join(parts[:4])
    expected = _signature(key, payload)
    # Bytes, not str: compare_digest refuses non-ASCII text with a TypeError.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise UnauthenticatedError("the download link is not valid")
    if token_export != export_id:
        raise NotFoundError(f"no export {export_id!r}")
    job = jobs.get(org_id, export_id)
    if job.links_revoked or int(version) != job.link_version:
        raise GoneError("this download link has been revoked")
    if int(expires) <= now:
        raise GoneError("this download link has expired; request a new export")
    return job
