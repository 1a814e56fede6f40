"""The export contract (SPEC §5): what a caller may ask for, and what a job looks like."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from success_metrics.metrics.periods import Granularity
from success_metrics.models.events import EventType, UserType

MAX_RANGE_DAYS = 3 * 366
MAX_NOTIFY = 10
# Deliberately plain: one @, no spaces or control characters (no header injection), a dotted
# domain. Deliverability is SES's job.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class Dataset(StrEnum):
    EVENTS = "events"
    METRICS = "metrics"
    SUMMARY = "summary"
    # Everything held on one user (GDPR access request); made by POST /v1/gdpr/access-requests.
    ACCESS = "access"


class Format(StrEnum):
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"
    XLSX = "xlsx"


class Compression(StrEnum):
    GZIP = "gzip"
    NONE = "none"


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (Status.QUEUED, Status.RUNNING)
CONTENT_TYPES = {
    Format.CSV: "text/csv; charset=utf-8",
    Format.JSON: "application/json",
    Format.NDJSON: "application/x-ndjson",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _email(value: str) -> str:
    if len(value) > 254 or not EMAIL.fullmatch(value):
        raise ValueError("is not an email address")
    return value.lower()


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    types: list[EventType] | None = Field(None, min_length=1, max_length=50)
    user_type: UserType | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dataset: Dataset
    format: Format
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    filters: Filters = Field(default_factory=Filters)
    compression: Compression = Compression.NONE
    notify: list[Annotated[str, AfterValidator(_email)]] = Field(
        default_factory=list, max_length=MAX_NOTIFY
    )
    # Periods of the `metrics` dataset (the summary covers the whole range).
    granularity: Granularity = Granularity.DAY
    # The user of an `access` export.
    subject: str | None = Field(None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.start > self.end:
            raise ValueError("'from' must not be after 'to'")
        if (self.end - self.start).days + 1 > MAX_RANGE_DAYS and self.dataset is not Dataset.ACCESS:
            raise ValueError("the range is at most 3 years")
        if self.format is Format.XLSX and self.compression is Compression.GZIP:
            raise ValueError("xlsx is already compressed; use compression 'none'")
        if self.dataset is not Dataset.EVENTS and (self.filters.types or self.filters.user_type):
            raise ValueError("filters apply to the events dataset only")
        if len(set(self.notify)) != len(self.notify):
            raise ValueError("notify lists an address twice")
        if (self.dataset is Dataset.ACCESS) != (self.subject is not None):
            raise ValueError("an access export names its subject, and only it does")
        return self

    def spec(self) -> dict[str, Any]:
        """The request as stored on the job and written in the manifest."""
        return self.model_dump(mode="json", by_alias=True)


class Progress(BaseModel):
    rows: int = 0
    bytes: int = 0
    estimated_rows: int | None = None
    percent: float | None = None


class ExportView(BaseModel):
    """What GET /v1/exports/{id} answers."""

    id: str
    status: Status
    dataset: Dataset
    format: Format
    compression: Compression
    range: dict[str, str]
    filters: dict[str, Any]
    granularity: str
    notify: list[str]
    progress: Progress
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: str | None = None
    error: str | None = None
    file: dict[str, Any] | None = None
    links: dict[str, str]
