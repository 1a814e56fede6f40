"""Every formula on small fixtures whose expected numbers are worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from success_metrics.metrics import formulas
from success_metrics.metrics.contributions import contribution
from success_metrics.metrics.periods import Granularity, bounds, bucket, buckets

D = Decimal


def period(
    counters: dict[str, str | int],
    *,
    paying_at_start: int = 0,
    couples: int = 0,
    first: date = date(2026, 6, 1),
    last: date = date(2026, 6, 30),
    granularity: Granularity = Granularity.MONTH,
    margin: str = "1",
    state: dict[str, int] | None = None,
) -> dict:
    return formulas.compute(
        formulas.PeriodInput(
            key="p",
            first=first,
            last=last,
            counters={k: D(str(v)) for k, v in counters.items()},
            paying_at_start=D(paying_at_start),
            couples_with_wedding_at_end=D(couples),
            granularity=granularity,
            gross_margin=D(margin),
            state_at_end={k: D(v) for k, v in (state or {}).items()},
        )
    )


def test_signups_by_user_type_and_trial_to_paid_by_cohort() -> None:
    # 10 trials started in June; 3 of those suppliers have subscribed since: 3 / 10 = 0.3
    result = period(
        {
            "signup": 12,
            "signup|couple": 9,
            "signup|supplier": 3,
            "signup|supplier|instagram": 2,
            "trial": 10,
            "trial_converted": 3,
        }
    )

    assert result["signups"] == {"total": 12, "by_user_type": {"couple": 9, "supplier": 3}}
    assert result["trials_started"] == 10
    assert result["trial_to_paid"]["value"] == 0.3


def test_cac_in_total_and_by_channel_per_currency() -> None:
    # GBP spend 1,000 (600 instagram + 400 google) for 4 new payers (3 from instagram, 1 google):
    # CAC 1000 / 4 = 250.00; instagram 600 / 3 = 200.00; google 400 / 1 = 400.00.
    # EUR spend 90 on google with no EUR-specific payer split: 90 / 4 = 22.50 (payers are not
    # per currency; spend is).
    result = period(
        {
            "paid_new": 4,
            "paid_new|instagram": 3,
            "paid_new|google": 1,
            "spend|*|GBP": 1000,
            "spend|instagram|GBP": 600,
            "spend|google|GBP": 400,
            "spend|*|EUR": 90,
            "spend|google|EUR": 90,
        }
    )

    gbp, eur = result["money"]["GBP"], result["money"]["EUR"]
    assert gbp["cac"] == {"value": "250.00"}
    assert gbp["cac_by_channel"] == {
        "google": {"value": "400.00"},
        "instagram": {"value": "200.00"},
    }
    assert eur["cac"] == {"value": "22.50"}
    assert eur["marketing_spend"] == "90.00"


def test_cac_without_new_payers_is_null_with_a_reason() -> None:
    result = period({"spend|*|GBP": 500, "spend|tiktok|GBP": 500})

    assert result["money"]["GBP"]["cac"]["value"] is None
    assert "no new paying suppliers" in result["money"]["GBP"]["cac"]["reason"]
    # Revenue in a currency with no marketing spend in it: CAC unknown, not 0.00.
    unspent = period({"rev|EUR": "10.00", "paid_new": 2})["money"]["EUR"]
    assert unspent["cac"] == {
        "value": None,
        "reason": "no marketing spend in this currency in the period",
    }
    assert unspent["cac_payback_months"]["value"] is None
    assert result["money"]["GBP"]["cac_by_channel"]["tiktok"]["value"] is None


def test_clv_with_margin_and_churn() -> None:
    # 100 paying at the start of a 30-day period; 10 started, 5 cancelled -> 105 at the end,
    # 102.5 on average. Subscription revenue 3,075.00 GBP over 30 days = 30/30.4375 months.
    # ARPU/month = 3075 / 102.5 / (30 / 30.4375) = 30 * 30.4375 / 30 = 30.4375 -> "30.44"
    # churn/month = 5 / 100 / (30 / 30.4375) = 0.05 * 1.0145833 = 0.05072917
    # CLV = 30.4375 * 0.8 / 0.05072917 = 480.00
    result = period(
        {"subrev|GBP": "3075.00", "sub_start": 10, "cancel": 5},
        paying_at_start=100,
        first=date(2026, 6, 1),
        last=date(2026, 6, 30),
        margin="0.8",
    )

    clv = result["money"]["GBP"]["clv"]
    assert clv["arpu_monthly"] == "30.44"
    assert clv["churn_monthly"] == pytest.approx(0.0507, abs=1e-4)
    assert clv["value"] == "480.00"
    assert clv["paying_at_start"] == 100
    assert clv["paying_at_end"] == 105


def test_clv_without_churn_is_undefined_not_infinite() -> None:
    result = period({"subrev|GBP": "100", "sub_start": 1}, paying_at_start=10)

    assert result["money"]["GBP"]["clv"]["value"] is None
    assert "churn is 0" in result["money"]["GBP"]["clv"]["reason"]


def test_k_factor_is_invites_accepted_per_new_user_with_both_factors() -> None:
    # 20 new users sent 30 invites (1.5 per user); 8 of the 30 were accepted (26.67 %);
    # K = 1.5 x 8/30 = 8 / 20 = 0.4.
    result = period({"signup": 20, "n|referral.invite_sent": 30, "n|referral.invite_accepted": 8})

    k = result["k_factor"]
    assert k["value"] == 0.4
    assert (k["invites_per_new_user"], k["invite_conversion"]) == (1.5, 0.2667)
    assert k["invites_per_new_user"] * (8 / 30) == pytest.approx(k["value"])
    # The demo season: 47 new users, 28 invites sent, 11 accepted: 0.234, not 0.139.
    demo = period({"signup": 47, "n|referral.invite_sent": 28, "n|referral.invite_accepted": 11})
    assert demo["k_factor"]["value"] == 0.234
    nobody = period({"n|referral.invite_sent": 3})["k_factor"]
    assert (nobody["value"], nobody["reason"]) == (None, "no new users in the period")
    silent = period({"signup": 5})["k_factor"]
    assert (silent["value"], silent["invite_conversion"]) == (0.0, None)


def test_seasonal_conversion_feature_adoption_and_device_share() -> None:
    # 40 couples searched in June and 10 of them booked: 0.25. 50 active users, 20 used the
    # budget planner: 0.4. Sessions: 6 mobile, 3 desktop, 1 tablet of 10: 0.6 / 0.3 / 0.1.
    result = period(
        {
            "searched|month": 40,
            "booked|month": 10,
            "active|month": 50,
            "feature_users|budget_planner|month": 20,
            "dev|mobile": 6,
            "dev|desktop": 3,
            "dev|tablet": 1,
        }
    )

    assert result["seasonal_conversion"]["value"] == 0.25
    assert result["feature_adoption"]["budget_planner"]["value"] == 0.4
    assert result["device_share"] == {"desktop": 0.3, "mobile": 0.6, "tablet": 0.1}
    assert result["sessions_by_device"] == {"desktop": 3, "mobile": 6, "tablet": 1}


def test_revenue_per_wedding_and_milestone_completion() -> None:
    # 1,250.00 GBP paid for 5 distinct weddings: 250.00 each. By the end of June 8 couples are
    # planning a wedding and have completed 12 milestones between them (1.5 per couple, a
    # count): 6 booked a venue (0.75), 2 chose a photographer (0.25); 4 of the 12 in June.
    result = period(
        {"rev|GBP": "1250.00", "weddings_paid|GBP|month": 5, "milestones": 4},
        state={
            "couples_planning": 8,
            "milestones": 12,
            "milestones|venue_booked": 6,
            "milestones|photographer_chosen": 2,
            "milestones|guest_list": 4,
        },
    )

    assert result["money"]["GBP"]["revenue_per_wedding"] == {"value": "250.00"}
    completion = result["milestone_completion"]
    assert completion["milestones_per_couple"] == 1.5
    assert completion["completed_in_period"] == 4
    assert completion["couples_planning"] == 8
    shares = {name: share["value"] for name, share in completion["by_milestone"].items()}
    assert shares == {"guest_list": 0.5, "photographer_chosen": 0.25, "venue_booked": 0.75}
    assert all(0 <= v <= 1 for v in shares.values())
    empty = period({})["milestone_completion"]
    assert (empty["milestones_per_couple"], empty["by_milestone"]) == (None, {})


def test_currencies_are_never_mixed() -> None:
    result = period({"rev|GBP": "10.00", "rev|EUR": "20.00"})

    assert result["money"]["GBP"]["revenue"] == "10.00"
    assert result["money"]["EUR"]["revenue"] == "20.00"


def test_breakdown_by_country_and_channel() -> None:
    counters = {
        "geo|GB": 5,
        "geo|GB|London": 3,
        "geo_signup|GB": 2,
        "geo_rev|GB|GBP": "20",
        "signup|supplier|instagram": 2,
        "paid_new|instagram": 1,
    }
    by_country = formulas.breakdown({k: D(str(v)) for k, v in counters.items()}, "country", "month")
    by_channel = formulas.breakdown({k: D(str(v)) for k, v in counters.items()}, "channel", "month")

    assert by_country == {
        "GB": {"events": 5, "signups": 2, "revenue": {"GBP": "20.00"}, "regions": {"London": 3}}
    }
    assert by_channel == {"instagram": {"signups": {"supplier": 2}, "new_paying_suppliers": 1}}


@pytest.mark.parametrize(
    ("day", "granularity", "key", "first", "last"),
    [
        (date(2026, 6, 14), Granularity.DAY, "2026-06-14", date(2026, 6, 14), date(2026, 6, 14)),
        (date(2026, 6, 14), Granularity.WEEK, "2026-W24", date(2026, 6, 8), date(2026, 6, 14)),
        (date(2026, 2, 14), Granularity.MONTH, "2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 10, 31), Granularity.SEASON, "2026-peak", date(2026, 5, 1), date(2026, 10, 31)),
        (
            date(2026, 11, 1),
            Granularity.SEASON,
            "2026-offpeak",
            date(2026, 11, 1),
            date(2027, 4, 30),
        ),
        (
            date(2027, 3, 1),
            Granularity.SEASON,
            "2026-offpeak",
            date(2026, 11, 1),
            date(2027, 4, 30),
        ),
    ],
)
def test_periods(day: date, granularity: Granularity, key: str, first: date, last: date) -> None:
    assert bucket(day, granularity) == key
    assert bounds(day, granularity) == (first, last)


def test_buckets_cover_a_range_with_whole_periods() -> None:
    found = list(buckets(date(2026, 4, 20), date(2026, 11, 2), Granularity.SEASON))

    assert [k for k, _, _ in found] == ["2025-offpeak", "2026-peak", "2026-offpeak"]


def test_contribution_of_a_first_subscription() -> None:
    doc = {
        "id": "evt_1",
        "type": "supplier.subscription_started",
        "occurred_at": "2026-06-14T10:31:00Z",
        "user_id": "usr_1",
        "user_type": "supplier",
        "properties": {"plan": "pro"},
        "revenue": {"amount": "29.00", "currency": "GBP"},
        "context": {"country": "GB", "region": "London"},
    }

    result = contribution(doc)

    assert result.day == date(2026, 6, 14)
    assert result.counters["sub_start"] == 1
    assert result.counters["subrev|GBP"] == D("29.00")
    assert result.counters["geo|GB|London"] == 1
    keys = {t.key for t in result.tokens}
    # The first subscription is the supplier ledger's fact (metrics.subscriptions), not a claim.
    assert not any(k.startswith("once|paid|") for k in keys)
    assert {
        f"dist|{g}|{k}|active|usr_1"
        for g, k in [
            ("day", "2026-06-14"),
            ("week", "2026-W24"),
            ("month", "2026-06"),
            ("season", "2026-peak"),
        ]
    } <= keys
