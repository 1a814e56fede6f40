"""The event model: the taxonomy, per-type rules, and bounded failure on any input."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from success_metrics import ingest
from success_metrics.errors import SuccessMetricsError
from success_metrics.models.events import EVENT_TYPES, Category, Event, category_of
from tests.support import load_event


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = load_event("samples/subscription_started")
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_sample_event_parses_with_utc_time_and_category() -> None:
    parsed = Event.model_validate(event(occurred_at="2026-06-14T12:31:00+02:00"))

    assert parsed.occurred_at == datetime(2026, 6, 14, 10, 31, tzinfo=UTC)
    assert parsed.category is Category.SUPPLIER
    assert parsed.revenue is not None
    assert str(parsed.revenue.value) == "29.00"


def test_every_documented_type_has_a_category_and_custom_types_are_custom() -> None:
    assert len(EVENT_TYPES) == 18  # the taxonomy of SPEC §3, with supplier.subscription_changed
    assert category_of("custom.venue_tour_booked") is Category.CUSTOM
    Event.model_validate(event(type="custom.venue_tour_booked", revenue=None))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"surprise": 1}, "Extra inputs"),
        ({"type": "supplier.unknown"}, "unknown event type"),
        ({"type": "custom.Bad-Name"}, "unknown event type"),
        ({"user_id": None}, "user_id or anonymous_id"),
        ({"occurred_at": "2026-06-14T10:31:00"}, "timezone"),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "out of range"),  # was a 500 (fuzz)
        ({"occurred_at": "9999-12-31T23:59:59-14:00"}, "out of range"),
        ({"type": "payment.succeeded", "revenue": None}, "requires revenue"),
        ({"type": "consent.updated", "consent": {}}, "consent.analytics"),
        ({"type": "user.signed_up", "user_type": None}, "user_type"),
        ({"revenue": {"amount": 29.0, "currency": "GBP"}}, "string"),
        ({"revenue": {"amount": "1e5", "currency": "GBP"}}, "pattern"),
        ({"revenue": {"amount": "10.00", "currency": "gbp"}}, "pattern"),
        ({"context": {"country": "United Kingdom"}}, "pattern"),
        ({"context": {"ip": "not-an-ip"}}, "IP"),
        ({"context": {"device": "fridge"}}, "mobile"),
        ({"properties": {"wedding_date": "next June"}}, "Invalid isoformat"),
        ({"properties": {"channel": 3}}, "wrong type"),
        ({"id": "has spaces"}, "pattern"),
    ],
)
def test_invalid_events_name_the_problem(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Event.model_validate(event(**changes))


def test_far_future_events_are_refused() -> None:
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    with pytest.raises(ValidationError, match="future"):
        Event.model_validate(event(occurred_at=future))


def test_anonymous_events_use_the_anonymous_id_as_actor() -> None:
    parsed = Event.model_validate(
        event(type="session.started", user_id=None, anonymous_id="anon_9", revenue=None)
    )

    assert parsed.actor == "anon:anon_9"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(payload=json_values)
def test_any_json_body_is_either_events_or_a_domain_error(payload: Any) -> None:
    body = json.dumps(payload).encode()
    try:
        raw = ingest.parse_events(body)
    except SuccessMetricsError as exc:
        assert 400 <= exc.status < 500
        return
    valid, rejected = ingest.validate(raw, "org_x", time.time())
    assert len(valid) + len(rejected) == len(raw)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_are_either_events_or_a_domain_error(body: bytes) -> None:
    try:
        raw = ingest.parse_events(body)
    except SuccessMetricsError as exc:
        assert 400 <= exc.status < 500
        return
    assert isinstance(raw, list)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "", "application/xml", "multipart/form-data"]
)
def test_non_json_media_types_are_415(content_type: str) -> None:
    with pytest.raises(SuccessMetricsError) as exc:
        ingest.check_media_type(content_type)
    assert exc.value.status == 415


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/cloudevents+json"],
)
def test_json_media_types_pass(content_type: str) -> None:
    ingest.check_media_type(content_type)
