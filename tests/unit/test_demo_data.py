"""The demo event generator: exact, deterministic, valid, causally ordered and realistic."""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter, defaultdict
from datetime import date
from itertools import islice
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack import demo
from success_metrics.models.events import EVENT_TYPES, Event

DOCUMENTATION_NETWORKS = [
    ipaddress.ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]


@pytest.fixture(scope="module")
def season() -> list[dict[str, Any]]:
    return demo.generate(3000)


@pytest.fixture(scope="module")
def year() -> list[dict[str, Any]]:
    return demo.generate(
        20_000, seed=11, season_start=date(2025, 1, 1), season_end=date(2025, 12, 31)
    )


def by_user(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    users: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        users[event.get("user_id") or event["anonymous_id"]].append(event)
    return users


def first_time(events: list[dict[str, Any]], event_type: str, **properties: Any) -> str | None:
    times = [
        e["occurred_at"]
        for e in events
        if e["type"] == event_type
        and all(e["properties"].get(k) == v for k, v in properties.items())
    ]
    return min(times, default=None)


@pytest.mark.parametrize("size", [0, 1, 2, 7, 501, 3000])
def test_generates_exactly_the_requested_number_of_events(size: int) -> None:
    assert len(demo.generate(size)) == size
    assert sum(1 for _ in demo.iter_events(size, seed=2)) == size


def test_same_arguments_give_the_same_events_and_other_seeds_differ() -> None:
    first = demo.generate(800, seed=3)

    assert demo.generate(800, seed=3) == first
    assert list(demo.iter_events(800, seed=3)) == first
    assert demo.generate(800, seed=4) != first
    assert demo.generate(800, seed=3, org_tag="acme") != first


def test_every_event_validates_against_the_ingestion_model(season: list[dict[str, Any]]) -> None:
    for event in season:
        Event.model_validate(event)


def test_ids_are_unique_deterministic_and_carry_org_tag_and_seed() -> None:
    events = demo.generate(1200, seed=5, org_tag="acme-co")
    ids = [e["id"] for e in events]

    assert len(set(ids)) == len(ids)
    assert ids[0] == "evt_acme-co_5_0000000"
    assert ids[-1] == "evt_acme-co_5_0001199"
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-:.]{0,127}", i) for i in ids)


def test_every_documented_type_appears(season: list[dict[str, Any]]) -> None:
    assert {e["type"] for e in season} == set(EVENT_TYPES)


def test_wire_format_is_json_with_utc_timestamps_and_typed_properties(
    season: list[dict[str, Any]],
) -> None:
    assert json.loads(json.dumps(season)) == season
    for event in season:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["occurred_at"])
        assert ("user_id" in event) != ("anonymous_id" in event)
        if event["type"] in ("payment.succeeded", "marketing.spend_recorded"):
            assert event["revenue"]["currency"] == "GBP"
            assert re.fullmatch(r"\d+\.\d\d", event["revenue"]["amount"])
    signups = [e for e in season if e["type"] == "user.signed_up"]
    assert {e["properties"]["channel"] for e in signups} <= set(demo.CHANNELS)
    assert any("campaign" in e["properties"] for e in signups)
    assert {e["user_type"] for e in signups} == {"supplier", "couple"}
    spend = [e for e in season if e["type"] == "marketing.spend_recorded"]
    assert {e["user_id"] for e in spend} == {demo.STAFF_USER_ID}
    assert {e["properties"]["channel"] for e in spend} == set(demo.PAID_CHANNELS)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2026, 5, 1), date(2026, 10, 31)),
        (date(2025, 11, 15), date(2026, 2, 14)),
        (date(2024, 2, 29), date(2024, 2, 29)),
    ],
)
def test_every_event_falls_inside_the_season(start: date, end: date) -> None:
    events = demo.generate(1500, seed=9, season_start=start, season_end=end)

    times = [e["occurred_at"] for e in events]
    assert min(times) >= f"{start.isoformat()}T00:00:00Z"
    assert max(times) <= f"{end.isoformat()}T23:59:59Z"


def test_each_user_story_is_causally_ordered(season: list[dict[str, Any]]) -> None:
    users = by_user(season)
    for user, events in users.items():
        times = [e["occurred_at"] for e in events]
        assert times == sorted(times), user
        signed_up = first_time(events, "user.signed_up")
        if signed_up is not None:
            assert events[0]["type"] == "user.signed_up"
        for later, earlier in [
            ("supplier.subscription_started", "supplier.trial_started"),
            ("supplier.subscription_renewed", "supplier.subscription_started"),
            ("supplier.subscription_cancelled", "supplier.subscription_started"),
            ("couple.milestone_completed", "couple.wedding_created"),
        ]:
            after = first_time(events, later)
            if after is not None:
                before = first_time(events, earlier)
                assert before is not None, (user, later)
                assert before < after, (user, later)
        for booked in (e for e in events if e["type"] == "couple.vendor_booked"):
            category = booked["properties"]["vendor_category"]
            searched = first_time(events, "couple.vendor_searched", vendor_category=category)
            assert searched is not None
            assert searched < booked["occurred_at"]


def test_bookings_name_generated_suppliers_of_the_right_category(
    season: list[dict[str, Any]],
) -> None:
    suppliers: dict[str, str] = {}
    bookings = 0
    for event in season:
        if event["type"] == "user.signed_up" and event["user_type"] == "supplier":
            suppliers[event["user_id"]] = event["properties"]["vendor_category"]
        if event["type"] == "couple.vendor_booked":
            bookings += 1
            supplier = event["properties"]["supplier_id"]
            assert suppliers[supplier] == event["properties"]["vendor_category"]
    assert bookings > 0


def test_invites_are_accepted_by_new_users_after_being_sent(season: list[dict[str, Any]]) -> None:
    sent: dict[str, dict[str, Any]] = {}
    signed_up: dict[str, str] = {}
    accepted = 0
    for event in season:
        if event["type"] == "referral.invite_sent":
            sent[event["properties"]["invite_id"]] = event
        elif event["type"] == "user.signed_up":
            signed_up[event["user_id"]] = event["occurred_at"]
        elif event["type"] == "referral.invite_accepted":
            accepted += 1
            invite = sent[event["properties"]["invite_id"]]
            assert invite["user_id"] == event["properties"]["inviter"] != event["user_id"]
            assert invite["occurred_at"] < signed_up[event["user_id"]] <= event["occurred_at"]
    assert 0 < accepted < len(sent)


def test_supplier_funnel_converts_a_realistic_share_of_trials() -> None:
    counts = Counter(e["type"] for e in demo.generate(30_000, seed=1))

    trial_to_paid = counts["supplier.subscription_started"] / counts["supplier.trial_started"]
    assert 0.25 <= trial_to_paid <= 0.45
    assert counts["supplier.subscription_renewed"] > counts["supplier.subscription_cancelled"] > 0


def test_couples_book_more_in_peak_months_than_off_peak(year: list[dict[str, Any]]) -> None:
    searched: dict[bool, set[str]] = defaultdict(set)
    booked: dict[bool, set[str]] = defaultdict(set)
    for event in year:
        peak = int(event["occurred_at"][5:7]) in demo.PEAK_MONTHS
        if event["type"] == "couple.vendor_searched":
            searched[peak].add(event["user_id"])
        elif event["type"] == "couple.vendor_booked":
            booked[peak].add(event["user_id"])

    assert len(booked[True]) / len(searched[True]) > len(booked[False]) / len(searched[False])


def test_countries_devices_and_client_details_are_a_realistic_mix(
    season: list[dict[str, Any]],
) -> None:
    countries = {e["context"]["country"] for e in season if "country" in e["context"]}
    assert countries & demo.EU_EEA_COUNTRIES
    assert countries - demo.EU_EEA_COUNTRIES
    assert all(re.fullmatch(r"[A-Z]{2}", c) for c in countries)
    assert all(e["context"].get("region") for e in season if "country" in e["context"])

    devices = Counter(e["context"]["device"] for e in season if e["type"] == "session.started")
    assert {"mobile", "desktop"} <= set(devices)
    assert 0.5 <= devices["mobile"] / devices.total() <= 0.7

    ips = [e["context"]["ip"] for e in season if "ip" in e["context"]]
    assert ips
    assert all(any(ipaddress.ip_address(ip) in net for net in DOCUMENTATION_NETWORKS) for ip in ips)
    assert all("user_agent" in e["context"] for e in season if "ip" in e["context"])


def test_some_sessions_are_anonymous(season: list[dict[str, Any]]) -> None:
    anonymous = [e for e in season if "anonymous_id" in e]

    assert anonymous
    assert {e["type"] for e in anonymous} == {"session.started"}


def test_some_users_withdraw_analytics_consent_and_later_events_respect_it(
    season: list[dict[str, Any]],
) -> None:
    withdrawn = 0
    for events in by_user(season).values():
        state = None
        for event in events:
            if event["type"] == "consent.updated":
                state = event["consent"]["analytics"]
                withdrawn += state is False
            elif state is not None:
                assert event["consent"]["analytics"] is state
    assert withdrawn > 0
    assert (
        Counter(e["consent"]["analytics"] for e in season if "consent" in e)[True]
        > len(season) // 2
    )


def test_iter_events_streams_without_building_the_whole_season() -> None:
    stream = demo.iter_events(10_000_000, seed=4)

    first = list(islice(stream, 50))
    assert len(first) == 50
    assert first[-1]["id"] == "evt_demo_4_0000049"


def test_batches_split_in_order_into_chunks_of_at_most_the_limit() -> None:
    events = demo.generate(1234, seed=6)
    chunks = list(demo.batches(events))

    assert [len(c) for c in chunks] == [500, 500, 234]
    assert [e for chunk in chunks for e in chunk] == events
    assert [len(c) for c in demo.batches(demo.iter_events(5), size=2)] == [2, 2, 1]
    assert list(demo.batches([])) == []
    with pytest.raises(ValueError, match="at least 1"):
        next(demo.batches(events, size=0))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"size": -1}, "negative"),
        (
            {"size": 5, "season_start": date(2026, 6, 1), "season_end": date(2026, 5, 1)},
            "before season_start",
        ),
        ({"size": 5, "org_tag": "not allowed"}, "org_tag"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        demo.generate(**arguments)


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32),
    start_offset=st.integers(min_value=0, max_value=300),
    length=st.integers(min_value=0, max_value=400),
)
def test_any_small_generation_is_exact_and_valid(
    size: int, seed: int, start_offset: int, length: int
) -> None:
    start = date.fromordinal(date(2024, 1, 1).toordinal() + start_offset)
    end = date.fromordinal(start.toordinal() + length)
    events = demo.generate(size, seed=seed, season_start=start, season_end=end)

    assert len(events) == size
    assert len({e["id"] for e in events}) == size
    for event in events:
        parsed = Event.model_validate(event)
        assert start <= parsed.occurred_at.date() <= end
