"""The couple funnel's replay (first time of each step, in order, any arrival order), its
median from buckets, and the retention grids read from per-day counters."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal as D
from typing import Any

from success_metrics.metrics import cohorts, funnel


def step(n: int, kind: str, when: str, user_type: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": f"evt_{n}", "type": kind, "occurred_at": when, "user_id": "cpl_1"}
    if user_type:
        doc["user_type"] = user_type
    return doc


DOCS = [
    step(1, "user.signed_up", "2026-05-01T10:00:00Z", "couple"),
    step(2, "couple.wedding_created", "2026-05-01T12:00:00Z"),
    step(3, "couple.vendor_searched", "2026-05-03T12:00:00Z"),
    step(4, "couple.vendor_searched", "2026-05-02T12:00:00Z"),  # the first search
    step(5, "couple.vendor_booked", "2026-07-09T12:00:00Z"),
]


def replayed(docs: list[dict[str, Any]]) -> dict[str, dict[str, D]]:
    kept: list[dict[str, Any]] = []
    for doc in docs:
        entry = funnel.step_of(doc)
        assert entry is not None
        kept, _ = funnel.merge(kept, [entry])
    return funnel.replay(kept)


def test_the_funnel_counts_each_step_once_on_the_signup_day_in_any_order() -> None:
    expected = replayed(DOCS)
    day = expected["2026-05-01"]
    assert {k: v for k, v in day.items() if k.startswith("fun|")} == {
        "fun|signed_up": 1,
        "fun|wedding_created": 1,
        "fun|vendor_searched": 1,
        "fun|vendor_booked": 1,
    }
    # Two hours, then a day (to the first search, not the second), then 68 days.
    times = {k.split("|")[1]: int(k.split("|")[2]) for k in day if k.startswith("funt|")}
    assert funnel.bucket_seconds(times["wedding_created"]) == pytest_approx(7200)
    assert funnel.bucket_seconds(times["vendor_searched"]) == pytest_approx(24 * 3600)
    assert day["cplcoh|2"] == 1  # booked two months after the signup month
    for order in itertools.permutations(DOCS):
        assert replayed(list(order)) == expected


def pytest_approx(seconds: float) -> Any:
    """A bucket's middle is within about 5 % of any duration in it."""
    import pytest

    return pytest.approx(seconds, rel=0.05)


def test_a_step_before_the_one_before_it_ends_the_funnel_there() -> None:
    docs = [
        step(1, "user.signed_up", "2026-05-01T10:00:00Z", "couple"),
        step(2, "couple.vendor_searched", "2026-05-01T11:00:00Z"),
        step(3, "couple.wedding_created", "2026-05-02T12:00:00Z"),
    ]
    day = replayed(docs)["2026-05-01"]
    assert {k for k in day if k.startswith("fun|")} == {"fun|signed_up", "fun|wedding_created"}
    assert funnel.step_of({**docs[0], "user_type": "supplier"}) is None
    assert replayed(docs[1:]) == {}  # no signup: not in the funnel


def test_the_grids_and_the_funnel_read_from_day_counters() -> None:
    per_day = {
        date(2026, 5, 3): {
            "cohsize|2026-05|GBP": D(2),
            "cohbase|2026-05|GBP": D("100.00"),
            "cohcust|2026-05|GBP": D(2),
            "cohmrr|2026-05|GBP": D("100.00"),
            "fun|signed_up": D(4),
            "fun|wedding_created": D(3),
            "fun|vendor_searched": D(2),
            "fun|vendor_booked": D(1),
            "funt|wedding_created|10": D(1),
            "funt|wedding_created|20": D(2),
            "cplcoh|0": D(1),
            "cplcoh|1": D(1),
        },
        date(2026, 6, 10): {"cohmrr|2026-05|GBP": D("20.00")},  # an upgrade
        date(2026, 7, 1): {"cohcust|2026-05|GBP": D(-1), "cohmrr|2026-05|GBP": D("-70.00")},
    }
    grid = cohorts.supplier_grid(per_day, date(2026, 5, 1), date(2026, 7, 31))
    [row] = grid["GBP"]
    assert (row["cohort"], row["suppliers"], row["first_mrr"]) == ("2026-05", 2, "100.00")
    assert [(c["logo_retention"], c["mrr_retention"]) for c in row["months"]] == [
        (1.0, 1.0),
        (1.0, 1.2),
        (0.5, 0.5),
    ]
    [couples] = cohorts.couple_grid(per_day, date(2026, 5, 1), date(2026, 7, 31))
    assert [c["booked_share"] for c in couples["months"]] == [0.25, 0.5, 0.5]
    answer = cohorts.funnel_of(per_day, date(2026, 5, 1), date(2026, 5, 31))
    assert [s["couples"] for s in answer["steps"]] == [4, 3, 2, 1]
    assert answer["steps"][1]["conversion"]["value"] == 0.75
    assert answer["overall"]["value"] == 0.25
    assert answer["steps"][1]["median_seconds_from_previous"] == round(funnel.bucket_seconds(20))
    assert answer["steps"][2]["median_seconds_from_previous"] is None
