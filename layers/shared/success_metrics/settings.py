"""Runtime settings: one pydantic model read once from the environment."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Environment of a handler, as `template.yaml` sets it (names are the variable names)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    events_table: str = Field("", alias="EVENTS_TABLE")
    organizations_table: str = Field("", alias="ORGANIZATIONS_TABLE")
    control_table: str = Field("", alias="CONTROL_TABLE")
    sync_queue_url: str = Field("", alias="SYNC_QUEUE_URL")
    metrics_queue_url: str = Field("", alias="METRICS_QUEUE_URL")
    metrics_table: str = Field("", alias="METRICS_TABLE")
    metrics_claims_table: str = Field("", alias="METRICS_CLAIMS_TABLE")
    delivery_queue_url: str = Field("", alias="DELIVERY_QUEUE_URL")
    deliveries_table: str = Field("", alias="DELIVERIES_TABLE")
    privacy_table: str = Field("", alias="PRIVACY_TABLE")
    audit_table: str = Field("", alias="AUDIT_TABLE")
    # Days an audit record is kept (SPEC §9), then expired by DynamoDB TTL.
    audit_days: int = Field(400, alias="AUDIT_DAYS", ge=1, le=3650)
    mixpanel_api_url: str = Field("https://api.mixpanel.com", alias="MIXPANEL_API_URL")
    mixpanel_eu_api_url: str = Field("https://api-eu.mixpanel.com", alias="MIXPANEL_EU_API_URL")
    ga4_api_url: str = Field("https://www.google-analytics.com", alias="GA4_API_URL")
    # GDPR deletion endpoints (SPEC §7): Mixpanel's GDPR API, Google's OAuth token endpoint and
    # the Google Analytics User Deletion API.
    mixpanel_gdpr_api_url: str = Field("https://mixpanel.com", alias="MIXPANEL_GDPR_API_URL")
    mixpanel_eu_gdpr_api_url: str = Field(
        "https://eu.mixpanel.com", alias="MIXPANEL_EU_GDPR_API_URL"
    )
    google_oauth_token_url: str = Field(
        "https://oauth2.googleapis.com/token", alias="GOOGLE_OAUTH_TOKEN_URL"
    )
    ga4_user_deletion_api_url: str = Field(
        "https://www.googleapis.com", alias="GA4_USER_DELETION_API_URL"
    )
    delivery_log_days: int = Field(30, alias="DELIVERY_LOG_DAYS", ge=1)
    # Circuit breaker per organization and destination (SPEC §4: 5 failures, 30 s to probe).
    breaker_failures: int = Field(5, alias="BREAKER_FAILURES", ge=1)
    breaker_recovery_seconds: int = Field(30, alias="BREAKER_RECOVERY_SECONDS", ge=1)
    allow_loopback_webhooks: bool = Field(False, alias="ALLOW_LOOPBACK_WEBHOOKS")
    # The hosts a Slack incoming-webhook URL may name, comma-separated (the local stack adds its
    # sink): digest, alerts and alarms post nowhere else.
    slack_allowed_hosts: str = Field("hooks.slack.com", alias="SLACK_ALLOWED_HOSTS")
    kms_key_id: str = Field("", alias="KMS_KEY_ID")
    stage: str = Field("prod", alias="STAGE")
    # Seconds a decrypted secret or an organization profile may be reused inside one instance.
    config_cache_seconds: float = Field(30.0, alias="CONFIG_CACHE_SECONDS", ge=0)
    # Default limits and retention given to a new organization.
    default_requests_per_hour: int = Field(100, alias="DEFAULT_REQUESTS_PER_HOUR", ge=1)
    default_events_per_hour: int = Field(1000, alias="DEFAULT_EVENTS_PER_HOUR", ge=1)
    default_exports_per_hour: int = Field(10, alias="DEFAULT_EXPORTS_PER_HOUR", ge=1)
    default_retention_days: int = Field(730, alias="DEFAULT_RETENTION_DAYS", ge=1)
    default_running_exports: int = Field(3, alias="DEFAULT_RUNNING_EXPORTS", ge=1)
    # Exports (SPEC §5).
    exports_table: str = Field("", alias="EXPORTS_TABLE")
    export_queue_url: str = Field("", alias="EXPORT_QUEUE_URL")
    exports_bucket: str = Field("", alias="EXPORTS_BUCKET")
    export_file_days: int = Field(7, alias="EXPORT_FILE_DAYS", ge=1, le=365)
    email_sender: str = Field("exports@success-metrics.example", alias="EMAIL_SENDER")
    public_api_url: str = Field("", alias="PUBLIC_API_URL")
    # S3 refuses parts under 5 MiB except the last; tests lower this together with moto's
    # S3_UPLOAD_PART_MIN_SIZE to exercise many parts on little data.
    export_part_bytes: int = Field(8 * 1024 * 1024, alias="EXPORT_PART_BYTES", ge=1024)
    # Rows per worker slice; a larger export fans out over several workers.
    export_slice_rows: int = Field(200_000, alias="EXPORT_SLICE_ROWS", ge=1)
    export_max_slices: int = Field(64, alias="EXPORT_MAX_SLICES", ge=1, le=1000)
    # A worker hands over to a fresh invocation when less than this is left.
    export_handover_ms: int = Field(60_000, alias="EXPORT_HANDOVER_MS", ge=0)
    # An Excel workbook is rendered by one worker (~2,500 rows/s): bounded to fit its 15 min.
    export_xlsx_max_rows: int = Field(1_500_000, alias="EXPORT_XLSX_MAX_ROWS", ge=1)
    # Rows per XLSX data sheet (Excel's own limit is 1,048,576).
    export_sheet_rows: int = Field(1_000_000, alias="EXPORT_SHEET_ROWS", ge=1, le=1_048_575)
    # Deliveries of one export message before the job fails (the queue's maxReceiveCount).
    export_attempts: int = Field(5, alias="EXPORT_ATTEMPTS", ge=1)
    # First retry delay of a failed export message, tripled on each attempt (5, 15, 45, 135 s),
    # instead of the queue's visibility timeout (90 min, sized for the longest slice).
    export_retry_seconds: float = Field(5, alias="EXPORT_RETRY_SECONDS", ge=0)
    # GDPR erasure (SPEC §7).
    gdpr_queue_url: str = Field("", alias="GDPR_QUEUE_URL")
    gdpr_attempts: int = Field(5, alias="GDPR_ATTEMPTS", ge=1)
    gdpr_handover_ms: int = Field(60_000, alias="GDPR_HANDOVER_MS", ge=0)
    download_url_seconds: int = Field(900, alias="DOWNLOAD_URL_SECONDS", ge=1, le=900)

    def slack_hosts(self) -> frozenset[str]:
        """`SLACK_ALLOWED_HOSTS` as a set of lower-case host names (empty entries ignored)."""
        return frozenset(
            h.strip().lower().strip("[]") for h in self.slack_allowed_hosts.split(",") if h.strip()
        )


@cache
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()
