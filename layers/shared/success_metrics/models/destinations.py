"""Destinations: where an organization's events and alerts go (SPEC §4)."""

from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from success_metrics.settings import get_settings

Secret = Annotated[str, Field(min_length=1, max_length=512)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MixpanelSettings(_Settings):
    kind: Literal["mixpanel"]
    project_token: Secret
    api_secret: Secret
    project_id: Annotated[str, Field(pattern=r"^[0-9]{1,20}$")] | None = None
    region: Literal["us", "eu"] = "us"
    # The GDPR OAuth token of a project owner or admin, for erasure (Mixpanel GDPR API).
    gdpr_token: Secret | None = None


class Ga4Settings(_Settings):
    kind: Literal["ga4"]
    measurement_id: Annotated[str, Field(pattern=r"^G-[A-Z0-9]{4,20}$")]
    api_secret: Secret
    # For erasure through the User Deletion API: the GA4 property and an OAuth client whose
    # refresh token has the analytics.user.deletion scope.
    property_id: Annotated[str, Field(pattern=r"^[0-9]{1,20}$")] | None = None
    oauth_client_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    oauth_client_secret: Secret | None = None
    oauth_refresh_token: Secret | None = None


class SlackSettings(_Settings):
    kind: Literal["slack"]
    webhook_url: Secret

    @field_validator("webhook_url")
    @classmethod
    def _allowed(cls, url: str) -> str:
        from success_metrics import urls  # not at import: the guard brings httpx (cold start)

        urls.check_slack_url(url)  # https, a host in SLACK_ALLOWED_HOSTS, public addresses
        return url


class WebhookSettings(_Settings):
    kind: Literal["webhook"]
    url: Annotated[str, Field(max_length=2048)]
    event_types: list[Annotated[str, Field(pattern=r"^[a-z_.*]{1,80}$")]] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=50
    )
    # A `whsec_` secret to sign with; a new one is generated (and shown once) when absent.
    signing_secret: Secret | None = None
    # The consent an event's user must have given for it to reach this endpoint (SPEC §1:
    # consent gates every outbound flow); "none" for endpoints that need no consent.
    consent: Literal["analytics", "marketing", "none"] = "analytics"

    @field_validator("url")
    @classmethod
    def _safe(cls, url: str) -> str:
        from success_metrics.sync import ssrf  # not at import: it brings httpx (cold start)

        ssrf.check_url(url, allow_loopback=_loopback_allowed())
        return url


def _loopback_allowed() -> bool:

    return get_settings().allow_loopback_webhooks


Settings = Annotated[
    MixpanelSettings | Ga4Settings | SlackSettings | WebhookSettings, Field(discriminator="kind")
]
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "mixpanel": ("project_token", "api_secret", "gdpr_token"),
    "ga4": ("api_secret", "oauth_client_secret", "oauth_refresh_token"),
    "slack": ("webhook_url",),
    "webhook": ("signing_secret",),
}


class DestinationRequest(BaseModel):
    """PUT /v1/destinations/{id}: the whole destination; secrets are write-only."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=120)]
    enabled: bool = True
    settings: Settings


class Destination(BaseModel):
    """As stored: public settings in clear, secrets KMS-encrypted as one JSON document."""

    org_id: str
    dest_id: str
    kind: Literal["mixpanel", "ga4", "slack", "webhook"]
    name: str
    enabled: bool
    public: dict[str, str | list[str] | None]
    secrets_ciphertext: str
    created_at: int
    updated_at: int
    failing_since: int | None = None
    disabled_reason: str | None = None
    # Names of the secrets that have a value (older records: None, meaning all of them).
    secret_names: list[str] | None = None

    def consent_required(self) -> str | None:
        """The consent purpose an event needs to be sent here (None: no consent gate)."""
        if self.kind in ("mixpanel", "ga4"):
            return "analytics"
        if self.kind == "webhook":
            purpose = self.public.get("consent") or "analytics"  # older records: the default
            return None if purpose == "none" else str(purpose)
        return None

    def accepts(self, event_type: str) -> bool:
        patterns = self.public.get("event_types") or ["*"]
        return any(fnmatch.fnmatchcase(event_type, p) for p in patterns if isinstance(p, str))


class DestinationView(BaseModel):
    dest_id: str
    kind: str
    name: str
    enabled: bool
    settings: dict[str, str | list[str] | None]
    secrets_set: list[str]
    created_at: int
    updated_at: int
    failing_since: int | None = None
    disabled_reason: str | None = None
