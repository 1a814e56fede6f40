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


# ------------------------------------------------------------------ the worker's state
# Stored as JSON in the job record (plan, slice checkpoints and results, file) and beside the
# file (manifest); the field names are those of the stored JSON.


class DaySlice(BaseModel):
    """Whole days of the range that one slice exports."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    start: date = Field(alias="from")
    end: date = Field(alias="to")


class Plan(BaseModel):
    """What planning decided: the moment the export reads as of (events stored later are left
    out), the estimated rows, the slices, and the S3 key of the snapshot of the figures the
    export needs besides events."""

    as_of: int
    estimated_rows: int
    slices: list[DaySlice]
    snapshot: str


class Checkpoint(BaseModel):
    """A slice's progress, saved after each uploaded part: its multipart upload, the parts and
    bytes uploaded, the rows written, and the dataset cursor after the last row of the last
    part (None at the start of the slice). That is all the writer's state: the writers resume
    from the row count (the CSV header and the JSON brackets and commas depend on nothing else),
    and the rows after the cursor are read again. `completing`: every part is uploaded and only
    completing the upload and recording the slice are left."""

    upload_id: str
    parts: int = 0
    rows: int = 0
    bytes: int = 0
    cursor: dict[str, Any] | None = None
    completing: bool = False


class SliceResult(BaseModel):
    """A finished slice: its object (the file itself when there is one slice) and its size."""

    key: str
    rows: int
    bytes: int
    parts: int


class ExportFile(BaseModel):
    """The finished file, as the job record keeps it."""

    name: str
    key: str
    manifest_key: str
    rows: int
    bytes: int
    sha256: str
    expires_at: int


class ManifestColumn(BaseModel):
    name: str
    type: str


class Manifest(BaseModel):
    """`manifest.json`, written beside the file."""

    model_config = ConfigDict(populate_by_name=True)

    export_id: str
    org_id: str
    file: str
    key: str
    rows: int
    bytes: int
    sha256: str
    columns: list[ManifestColumn]
    dataset: Dataset
    format: Format
    compression: Compression
    range: DaySlice
    filters: dict[str, Any]
    granularity: Granularity | None
    created_at: int
    finished_at: int
    expires_at: int
    sheets: list[str] | None = None
