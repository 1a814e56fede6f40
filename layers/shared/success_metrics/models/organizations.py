"""Organizations (tenants), their limits, webhook secrets and API keys."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Scope(StrEnum):
    EXPORTS_READ = "exports:read"
    EXPORTS_WRITE = "exports:write"
    METRICS_READ = "metrics:read"
    GDPR_WRITE = "gdpr:write"
    CONFIG_WRITE = "config:write"
    AUDIT_READ = "audit:read"


ALL_SCOPES: tuple[Scope, ...] = tuple(Scope)


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_hour: int = Field(ge=1, le=10_000_000)
    events_per_hour: int = Field(ge=1, le=1_000_000_000)
    exports_per_hour: int = Field(ge=1, le=100_000)
    # Exports queued or running at once (organizations created before this limit get 3).
    running_exports: int = Field(3, ge=1, le=1000)
    # Erasures requested per hour (the erasure workers are shared by every organization).
    erasures_per_hour: int = Field(100, ge=1, le=100_000)


class StoredSecret(BaseModel):
    """A KMS-encrypted webhook secret; `valid_until` is set once it has been rotated out."""

    ciphertext: str
    created_at: int
    valid_until: int | None = None


class AlertRule(BaseModel):
    """Alert when yesterday's `metric` compares to `value` by `op` (e.g. signups < 10)."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=80)
    op: Literal["<", "<=", ">", ">="]
    value: Decimal

    def crossed(self, observed: Decimal) -> bool:
        return {
            "<": observed < self.value,
            "<=": observed <= self.value,
            ">": observed > self.value,
            ">=": observed >= self.value,
        }[self.op]


class Organization(BaseModel):
    org_id: str
    name: str
    created_at: int
    limits: Limits
    retention_days: int = Field(ge=1, le=3650)
    webhook_secrets: list[StoredSecret]
    gross_margin: Decimal = Field(Decimal(1), gt=0, le=1)
    alerts: list[AlertRule] = Field(default_factory=list)
    # KMS-encrypted Slack incoming-webhook URL for the digest and alerts.
    slack_webhook: str | None = None
    # KMS-encrypted key for the keyed-hash pseudonyms of anonymised users (created on first use).
    pseudonym_key: str | None = None
    anonymise_all: bool = False
    # Events with no context.country are anonymised unless this is turned off.
    anonymise_unknown_country: bool = True
    # Someone was erased: ingest and the sync paths check the suppression list.
    has_suppressions: bool = False
    version: int = 1

    def secrets_valid_at(self, now: float) -> list[StoredSecret]:
        return [s for s in self.webhook_secrets if s.valid_until is None or s.valid_until > now]


class ApiKey(BaseModel):
    org_id: str
    key_id: str
    secret_sha256: str
    scopes: list[Scope]
    created_at: int
    description: str = ""
    revoked_at: int | None = None


class PrivacySettings(BaseModel):
    """The organization's anonymisation choices (SPEC §4; `PUT /v1/organization/settings`)."""

    model_config = ConfigDict(extra="forbid")

    anonymise_all: bool = Field(
        description="anonymise every user's events before they leave, EU or not"
    )
    anonymise_unknown_country: bool = Field(
        description="anonymise events that carry no context.country (default on)"
    )


class PrivacySettingsChange(BaseModel):
    """A partial change: the settings left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    anonymise_all: bool | None = None
    anonymise_unknown_country: bool | None = None


class OrganizationSettings(BaseModel):
    """What `PUT /v1/organization/settings` answers: the settings now in force."""

    privacy: PrivacySettings


class OrganizationView(BaseModel):
    """What `GET /v1/organization` answers: no secret material."""

    org_id: str
    name: str
    created_at: int
    limits: Limits
    retention_days: int
    key_id: str
    scopes: list[Scope]
    privacy: PrivacySettings


class CreatedOrganization(BaseModel):
    org_id: str
    name: str
    webhook_secret: str
    api_key: str
    key_id: str


class CreatedApiKey(BaseModel):
    org_id: str
    key_id: str
    api_key: str
    scopes: list[Scope]
