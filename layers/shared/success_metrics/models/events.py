"""The ingestion contract (SPEC §3): the event object and the wedding taxonomy."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MAX_BATCH_EVENTS = 500
MAX_BODY_BYTES = 1024 * 1024
# Events stamped further ahead than this are a producer clock bug, not a future booking.
MAX_FUTURE_SKEW = timedelta(hours=24)


class Category(StrEnum):
    ACQUISITION = "acquisition"
    SUPPLIER = "supplier"
    COUPLE = "couple"
    VIRALITY = "virality"
    ENGAGEMENT = "engagement"
    REVENUE = "revenue"
    PRIVACY = "privacy"
    CUSTOM = "custom"


EVENT_TYPES: dict[str, Category] = {
    "user.signed_up": Category.ACQUISITION,
    "marketing.spend_recorded": Category.ACQUISITION,
    "supplier.trial_started": Category.SUPPLIER,
    "supplier.subscription_started": Category.SUPPLIER,
    "supplier.subscription_renewed": Category.SUPPLIER,
    "supplier.subscription_changed": Category.SUPPLIER,
    "supplier.subscription_cancelled": Category.SUPPLIER,
    "supplier.client_added": Category.SUPPLIER,
    "couple.wedding_created": Category.COUPLE,
    "couple.milestone_completed": Category.COUPLE,
    "couple.vendor_searched": Category.COUPLE,
    "couple.vendor_booked": Category.COUPLE,
    "referral.invite_sent": Category.VIRALITY,
    "referral.invite_accepted": Category.VIRALITY,
    "session.started": Category.ENGAGEMENT,
    "feature.used": Category.ENGAGEMENT,
    "payment.succeeded": Category.REVENUE,
    "consent.updated": Category.PRIVACY,
}
CUSTOM_TYPE = re.compile(r"^custom\.[a-z][a-z0-9_]{0,63}$")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_\-:.]{0,127}$"

# Payment amounts: up to 12 integer digits and 4 decimals, as a string so no float rounding.
_AMOUNT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,4})?$")

# Properties a type's metrics read, with the Python types they must have when present.
_TYPED_PROPERTIES: dict[str, type | tuple[type, ...]] = {
    "channel": str,
    "campaign": str,
    "plan": str,
    "interval": str,
    "milestone": str,
    "vendor_category": str,
    "supplier_id": str,
    "wedding_id": str,
    "feature": str,
    "wedding_date": str,
    "budget": (str, int),
}
BILLING_INTERVALS = ("month", "year")  # a subscription's revenue is per interval
MAX_PROPERTIES = 100
# Nesting of `properties` values (DynamoDB refuses documents nested deeper than 32 levels).
MAX_PROPERTY_DEPTH = 32
MAX_PROPERTY_KEY = 128


def category_of(event_type: str) -> Category:
    return EVENT_TYPES.get(event_type, Category.CUSTOM)


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (iterative: any depth is safe to measure)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def _check_type(value: str) -> str:
    if value in EVENT_TYPES or CUSTOM_TYPE.match(value):
        return value
    raise ValueError(
        "unknown event type; use one of the documented types or 'custom.<name>' "
        "(lower-case letters, digits and underscores)"
    )


EventId = Annotated[str, StringConstraints(pattern=_ID)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s]+$")]
EventType = Annotated[str, StringConstraints(max_length=72), AfterValidator(_check_type)]


class UserType(StrEnum):
    SUPPLIER = "supplier"
    COUPLE = "couple"
    STAFF = "staff"


class Device(StrEnum):
    MOBILE = "mobile"
    DESKTOP = "desktop"
    TABLET = "tablet"
    OTHER = "other"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=2048)


class Revenue(_Strict):
    amount: Annotated[str, StringConstraints(pattern=_AMOUNT.pattern)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

    @property
    def value(self) -> Decimal:
        return Decimal(self.amount)


class Context(_Strict):
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    region: Annotated[str, StringConstraints(max_length=100)] | None = None
    device: Device | None = None
    ip: IPv4Address | IPv6Address | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None
    locale: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None
    ) = None


class Consent(_Strict):
    analytics: bool | None = None
    marketing: bool | None = None


class Event(_Strict):
    """One business event as a producer sends it. Unknown top-level fields are rejected."""

    id: EventId
    type: EventType
    occurred_at: AwareDatetime
    user_id: UserId | None = None
    anonymous_id: UserId | None = None
    user_type: UserType | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    revenue: Revenue | None = None
    context: Context = Field(default_factory=Context)
    consent: Consent | None = None

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC datetime
            raise ValueError("occurred_at is out of range once converted to UTC") from None

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_PROPERTIES:
            raise ValueError(f"at most {MAX_PROPERTIES} properties")
        if _depth(value) > MAX_PROPERTY_DEPTH:
            raise ValueError(f"properties nest at most {MAX_PROPERTY_DEPTH} levels deep")
        for key, item in value.items():
            if not key or len(key) > MAX_PROPERTY_KEY:
                raise ValueError(f"property names are 1-{MAX_PROPERTY_KEY} characters")
            expected = _TYPED_PROPERTIES.get(key)
            if expected is not None and item is not None and not isinstance(item, expected):
                raise ValueError(f"property {key!r} has the wrong type")
        wedding_date = value.get("wedding_date")
        if isinstance(wedding_date, str):
            date.fromisoformat(wedding_date)  # ValueError names the problem
        budget = value.get("budget")
        if isinstance(budget, str) and not _AMOUNT.match(budget):
            raise ValueError("property 'budget' must be a decimal amount")
        if value.get("interval") not in (None, *BILLING_INTERVALS):
            raise ValueError("property 'interval' is the billing interval: 'month' or 'year'")
        return value

    @model_validator(mode="after")
    def _type_rules(self) -> Self:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("user_id or anonymous_id is required")
        if self.type in ("payment.succeeded", "marketing.spend_recorded") and self.revenue is None:
            raise ValueError(f"{self.type} requires revenue")
        if self.type == "consent.updated" and (
            self.consent is None
            or (self.consent.analytics is None and self.consent.marketing is None)
        ):
            raise ValueError("consent.updated requires consent.analytics or consent.marketing")
        if self.type == "user.signed_up" and (self.user_id is None or self.user_type is None):
            raise ValueError("user.signed_up requires user_id and user_type")
        if self.occurred_at > datetime.now(UTC) + MAX_FUTURE_SKEW:
            raise ValueError("occurred_at is more than 24 hours in the future")
        return self

    @property
    def category(self) -> Category:
        return category_of(self.type)

    @property
    def actor(self) -> str:
        """The per-user index key: the user id, or the anonymous id when there is none."""
        return self.user_id if self.user_id is not None else f"anon:{self.anonymous_id}"


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Any]


class RejectedEvent(BaseModel):
    index: int
    errors: list[dict[str, Any]]


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]
    # Events of users erased under GDPR: dropped, not stored (SPEC §7).
    suppressed: int = 0
