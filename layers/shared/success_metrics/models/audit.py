"""What `GET /v1/audit` answers (SPEC §9; `success_metrics.audit` writes the records)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AuditRecord(BaseModel):
    """One admin request or `smctl` change: who, what, when, how it ended. Never a credential,
    a secret, a token, a body or a user id."""

    model_config = ConfigDict(extra="allow")

    org_id: str
    key_id: str = Field(description="the API key's id, `download-link`, or `operator:<user>`")
    method: str = Field(description="the HTTP method, or CLI for smctl")
    route: str = Field(description="the route template (`/v1/exports/{export_id}`) or command")
    resource_id: str | None = Field(None, description="the resource named or created, if any")
    status: int | None = Field(None, description="the HTTP status; absent while pending")
    outcome: Literal["pending", "succeeded", "refused", "failed"]
    request_id: str
    source_ip: str | None = None
    user_agent: str | None = None
    at: str = Field(description="when the request arrived (UTC, ISO 8601)")
    expires_at: int = Field(description="Unix seconds after which the record is deleted")


class AuditList(BaseModel):
    records: list[AuditRecord]
    next_cursor: str | None = Field(None, description="pass as `cursor` for older records")
