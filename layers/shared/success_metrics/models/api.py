"""Request and response shapes of the HTTP API that have no home elsewhere (for the OpenAPI
document, `success_metrics.openapi`). Responses allow extra fields: they describe what a client
can rely on, not every detail."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from success_metrics.models.destinations import DestinationView
from success_metrics.models.events import MAX_BATCH_EVENTS, Event

UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(_Open):
    """An RFC 9457 problem document: every error answer."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class DestinationList(_Open):
    destinations: list[DestinationView]


class DeliveryList(_Open):
    """`deliveries` (one page of summaries, newest attempt first, with `next_cursor` and the
    `next` link of the following page, both null on the last), or with `event_id`: where that
    event stands."""

    deliveries: list[dict[str, Any]] | None = None
    next_cursor: str | None = None
    next: str | None = None
    event_id: str | None = None
    destinations: list[dict[str, Any]] | None = None


class DeliveryRetried(_Open):
    delivery_id: str
    status: Literal["queued"]


class ExportList(_Open):
    exports: list[dict[str, Any]]
    next_cursor: str | None = None


class MetricsAnswer(_Open):
    org_id: str
    periods: list[dict[str, Any]]
    totals: dict[str, Any]


class CohortsAnswer(_Open):
    org_id: str
    range: dict[str, str]
    suppliers: dict[str, list[dict[str, Any]]]
    couples: list[dict[str, Any]]


class FunnelAnswer(_Open):
    org_id: str
    range: dict[str, str]
    steps: list[dict[str, Any]]
    overall: dict[str, Any]


class ConsentView(_Open):
    user_id: str
    current: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]


class AccessRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    notify: list[str] = Field(default_factory=list, max_length=10)


def _exactly_one_id(schema: dict[str, Any]) -> None:
    # Either id, never null, and exactly one of them (the API answers 400 otherwise).
    for name in ("user_id", "anonymous_id"):
        field = schema["properties"][name]
        [text] = [s for s in field.pop("anyOf") if s.get("type") == "string"]
        field.pop("default", None)
        field.update(text)
    schema["oneOf"] = [{"required": ["user_id"]}, {"required": ["anonymous_id"]}]


class ErasureRequestBody(BaseModel):
    """Whom to erase: a user (`user_id`), or someone known only by an anonymous (device or
    cookie) id (`anonymous_id`). Exactly one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_id)

    user_id: UserId | None = None
    anonymous_id: UserId | None = None

    @model_validator(mode="after")
    def _one_id(self) -> Self:
        if (self.user_id is None) == (self.anonymous_id is None):
            raise ValueError("give exactly one of user_id or anonymous_id")
        return self


class SystemProgressView(_Open):
    status: Literal["pending", "running", "done", "not_configured", "failed"]
    count: int
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class ErasureView(_Open):
    """An erasure's progress per system; once finished, its receipt."""

    erasure_id: str
    status: Literal["queued", "running", "succeeded", "needs_attention"]
    subject_kind: Literal["user", "anonymous"]
    subject_hash: str
    requested_at: str
    started_at: str | None = None
    finished_at: str | None = None
    step: str | None = None
    systems: dict[str, SystemProgressView]
    links: dict[str, str]


class OpenApiDocument(_Open):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class EventList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class SendEventsBody(RootModel[Event | EventList]):
    """One event, or `{"events": [...]}` (at most 500; each valid one is accepted)."""
