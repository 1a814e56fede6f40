"""Subscription revenue: the replay of a supplier's history into MRR movements, and the figures
derived from them, checked against the published worked examples of the definitions
(ChartMogul's help centre, cited in docs/metrics.md) and hand-computed cases."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest

from success_metrics.metrics import formulas, subscriptions
from success_metrics.metrics.periods import Granularity
from success_metrics.metrics.subscriptions import Change, change_of, replay


def sub(n: int, kind: str, day: str, amount: str | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"evt_{n:03d}",
        "type": f"supplier.subscription_{kind}",
        "occurred_at": f"{day}T12:00:{n % 60:02d}Z",
        "user_id": "sup_1",
        "properties": dict(extra),
    }
    if amount is not None:
        doc["revenue"] = {"amount": amount, "currency": extra.pop("currency", "USD")}
        doc["properties"].pop("currency", None)
    return doc


def movements(*docs: dict[str, Any], cohorts: bool = False) -> dict[str, dict[str, D]]:
    """The replay's counters; without `cohorts`, the movements and customer counts only."""
    changes = [c for c in (change_of(d) for d in docs) if c is not None]
    found = replay(changes)
    if cohorts:
        return found
    kept = {
        day: {k: v for k, v in counters.items() if k.startswith(("mrr_", "cust_"))}
        for day, counters in found.items()
    }
    return {day: counters for day, counters in kept.items() if counters}


def test_chartmogul_syncalytics_new_expansion_contraction_churn_reactivation() -> None:
    # help.chartmogul.com/hc/en-us/articles/201244842 (MRR movements): four Gold yearly plans
    # billed $2,000 are $166.67 of new business; two Silver monthly plans added ($60) are
    # expansion; cancelling the Silver plans is a $60 contraction; cancelling the last plan
    # churns $166.67; re-subscribing to three Gold monthly plans ($150) is a reactivation.
    found = movements(
        sub(1, "started", "2026-01-05", "2000.00", interval="year"),
        sub(2, "changed", "2026-01-09", "226.67"),
        sub(3, "changed", "2026-01-23", "2000.00", interval="year"),
        sub(4, "cancelled", "2026-12-20"),
        sub(5, "started", "2027-02-01", "150.00"),
    )
    assert found == {
        "2026-01-05": {"mrr_new|USD": D("166.67"), "cust_new|USD": 1},
        "2026-01-09": {"mrr_expansion|USD": D("60.00")},
        "2026-01-23": {"mrr_contraction|USD": D("-60.00")},
        "2026-12-20": {"mrr_churn|USD": D("-166.67"), "cust_churned|USD": 1},
        "2027-02-01": {"mrr_reactivation|USD": D("150.00"), "cust_reactivated|USD": 1},
    }


def test_a_yearly_amount_is_a_twelfth_a_month_to_the_cent() -> None:
    assert subscriptions.monthly(D("2000.00"), "year") == D("166.67")
    assert subscriptions.monthly(D("99.99"), "month") == D("99.99")
    assert subscriptions.monthly(D("100.00"), "year") == D("8.33")


def test_every_movement_is_counted_under_the_first_paid_month_too() -> None:
    found = movements(
        sub(1, "started", "2026-01-05", "100.00"),
        sub(2, "changed", "2026-02-09", "150.00"),
        sub(3, "cancelled", "2026-03-20"),
        sub(4, "started", "2026-05-01", "80.00"),
        cohorts=True,
    )
    cohort = {day: {k: v for k, v in c.items() if k.startswith("coh")} for day, c in found.items()}
    assert cohort == {
        "2026-01-05": {
            "cohmrr|2026-01|USD": D("100.00"),
            "cohcust|2026-01|USD": 1,
            "cohsize|2026-01|USD": 1,
            "cohbase|2026-01|USD": D("100.00"),
        },
        "2026-02-09": {"cohmrr|2026-01|USD": D("50.00")},
        "2026-03-20": {"cohmrr|2026-01|USD": D("-150.00"), "cohcust|2026-01|USD": -1},
        # A reactivation stays in the first cohort.
        "2026-05-01": {"cohmrr|2026-01|USD": D("80.00"), "cohcust|2026-01|USD": 1},
    }


def test_a_late_change_moves_amounts_between_movements() -> None:
    # Started at 100, cancelled in March: new +100, churn -100. A change to 150 in February,
    # arriving after the cancellation was counted, makes it new +100, expansion +50,
    # churn -150; the difference is what the aggregator applies.
    before = movements(sub(1, "started", "2026-01-10", "100"), sub(3, "cancelled", "2026-03-01"))
    after = movements(
        sub(1, "started", "2026-01-10", "100"),
        sub(2, "changed", "2026-02-01", "150"),
        sub(3, "cancelled", "2026-03-01"),
    )
    # (the cohort counters move the same way: the supplier's cohort is January)
    assert subscriptions.difference(after, before) == {
        date(2026, 2, 1): {"mrr_expansion|USD": D("50")},
        date(2026, 3, 1): {"mrr_churn|USD": D("-50")},
    }


def test_any_arrival_order_gives_the_same_movements() -> None:
    docs = [
        sub(1, "started", "2026-01-10", "100"),
        sub(2, "changed", "2026-02-01", "150"),
        sub(3, "renewed", "2026-03-01", "150"),
        sub(4, "changed", "2026-04-01", "90"),
        sub(5, "cancelled", "2026-05-01"),
        sub(6, "started", "2026-07-01", "1200", interval="year"),
    ]
    expected = movements(*docs)
    for order in itertools.permutations(docs):
        assert movements(*order) == expected


def test_free_plans_currency_changes_and_renewals_without_revenue() -> None:
    found = movements(
        sub(1, "started", "2026-01-01", "0"),  # a free plan: not a paying supplier
        sub(2, "changed", "2026-02-01", "50", currency="EUR"),
        sub(3, "changed", "2026-03-01", "40", currency="GBP"),  # another currency
        {**sub(4, "renewed", "2026-04-01"), "revenue": None},
        sub(5, "changed", "2026-05-01", "0", currency="GBP"),  # down to a free plan
    )
    assert found == {
        "2026-02-01": {"mrr_new|EUR": D("50"), "cust_new|EUR": 1},
        "2026-03-01": {
            "mrr_churn|EUR": D("-50"),
            "cust_churned|EUR": 1,
            "mrr_reactivation|GBP": D("40"),
            "cust_reactivated|GBP": 1,
        },
        "2026-05-01": {"mrr_churn|GBP": D("-40"), "cust_churned|GBP": 1},
    }


def test_the_ledger_form_of_a_change_reads_back_the_same() -> None:
    change = change_of(sub(1, "started", "2026-01-05", "2000.00", interval="year"))
    assert change is not None
    assert Change.from_json(change.to_json()) == change
    assert change_of({**sub(2, "started", "2026-01-05", "10"), "user_id": None}) is None


# ------------------------------------------------------------------ the figures


def figures(
    counters: dict[str, Any], state: dict[str, Any], cac: str | None = None, margin: str = "1"
) -> dict[str, Any]:
    period = formulas.PeriodInput(
        key="p",
        first=date(2026, 6, 1),
        last=date(2026, 6, 30),
        counters={k: D(str(v)) for k, v in counters.items()},
        paying_at_start=D(0),
        couples_with_wedding_at_end=D(0),
        granularity=Granularity.MONTH,
        gross_margin=D(margin),
        state_at_end={k: D(str(v)) for k, v in state.items()},
    )
    given = {"value": cac} if cac else {"value": None, "reason": "no CAC"}
    return formulas.subscription_figures(period, "USD", given)


def month(
    start: int,
    new: int = 0,
    expansion: int = 0,
    contraction: int = 0,
    churn: int = 0,
    reactivation: int = 0,
    paying_start: int = 10,
    cust_new: int = 0,
    churned: int = 0,
) -> tuple[dict[str, int], dict[str, int]]:
    """(counters of the month, running totals at its end) for a month that starts at `start`
    MRR with `paying_start` suppliers."""
    counters = {
        "mrr_new|USD": new,
        "mrr_expansion|USD": expansion,
        "mrr_contraction|USD": -contraction,
        "mrr_churn|USD": -churn,
        "mrr_reactivation|USD": reactivation,
        "cust_new|USD": cust_new,
        "cust_churned|USD": churned,
    }
    state = dict(counters)
    state["mrr_new|USD"] += start  # earlier months' movements, all new business say
    state["cust_new|USD"] += paying_start
    return counters, state


def test_chartmogul_gross_and_net_mrr_churn_example() -> None:
    # help.chartmogul.com/hc/en-us/articles/203359341: $100 MRR at the start; $10 lost to churn
    # and $10 to contraction while one customer expanded by $10: gross MRR churn 20 %, net 10 %.
    result = figures(*month(100, expansion=10, contraction=10, churn=10, churned=1))
    assert result["mrr_start"] == "100.00"
    assert result["mrr_end"] == "90.00"
    assert result["gross_mrr_churn"]["value"] == 0.2
    assert result["net_mrr_churn"]["value"] == 0.1
    assert result["mrr_movements"] == {
        "new": "0.00",
        "expansion": "10.00",
        "contraction": "-10.00",
        "churn": "-10.00",
        "reactivation": "0.00",
        "net": "-10.00",
    }


def test_net_revenue_retention_example() -> None:
    # Starting MRR 100,000, expansion 15,000, churn 8,000: NRR 107 %.
    result = figures(*month(100_000, expansion=15_000, churn=8_000, churned=2))
    assert result["net_revenue_retention"]["value"] == 1.07


def test_ltv_and_cac_payback_examples() -> None:
    # ARPA 500 a month, gross margin 80 %, monthly customer churn 5 %: LTV 8,000. CAC 2,000:
    # payback 2,000 / (500 x 0.8) = 5 months. (20 suppliers at 500 = 10,000 MRR; one of 20
    # churned and one new one took its place, so ARPA stays 500.)
    counters, state = month(10_000, new=500, churn=500, paying_start=20, cust_new=1, churned=1)
    result = figures(counters, state, cac="2000.00", margin="0.8")
    assert result["arpa"] == {"value": "500.00"}
    assert result["customer_churn_rate"]["value"] == 0.05
    assert result["ltv"]["value"] == "8000.00"
    assert result["cac_payback_months"]["value"] == 5.0


def test_quick_ratio_hand_computed() -> None:
    # New 300 + expansion 100 + reactivation 50 = 450 gained; churn 100 + contraction 50 = 150
    # lost: quick ratio 3.0. MRR 1,000 -> 1,300; NRR (1,000 + 100 - 150) / 1,000 = 0.95.
    result = figures(
        *month(1000, new=300, expansion=100, reactivation=50, churn=100, contraction=50)
    )
    assert result["quick_ratio"]["value"] == 3.0
    assert result["mrr_end"] == "1300.00"
    assert result["net_revenue_retention"]["value"] == 0.95


def test_undefined_figures_say_why() -> None:
    quiet = figures(*month(0, paying_start=0))
    assert quiet["gross_mrr_churn"] == {
        "value": None,
        "numerator": 0.0,
        "denominator": 0,
        "reason": "no MRR at the start of the period",
    }
    assert quiet["arpa"]["value"] is None
    steady = figures(*month(1000))
    assert steady["ltv"] == {
        "value": None,
        "reason": "customer churn is 0 in the period: lifetime unbounded",
    }
    assert steady["quick_ratio"]["reason"] == "no MRR was lost to churn or contraction"
    assert steady["cac_payback_months"]["value"] is None


@pytest.mark.parametrize("seed", range(5))
def test_mrr_start_plus_movements_is_mrr_end_to_the_cent(seed: int) -> None:
    import random

    rng = random.Random(seed)
    amounts = [str(D(rng.randint(0, 99999)) / 100) for _ in range(5)]
    counters, state = month(
        rng.randint(0, 10**6),
        new=int(D(amounts[0])),
        expansion=int(D(amounts[1])),
        contraction=int(D(amounts[2])),
        churn=int(D(amounts[3])),
        reactivation=int(D(amounts[4])),
    )
    result = figures(counters, state)
    total = D(result["mrr_start"]) + sum(D(result["mrr_movements"][n]) for n in formulas.MOVEMENTS)
    assert total == D(result["mrr_end"])
    assert D(result["mrr_movements"]["net"]) == D(result["mrr_end"]) - D(result["mrr_start"])


def test_first_trial_conversion_and_first_subscription_whatever_the_arrival_order() -> None:
    # Signed up on Instagram, trial on 1 May, paid on 20 May (19 days: within 30), cancelled,
    # back in July: one trial, one conversion on the trial's day, one new paying supplier on
    # 20 May by the signup's channel; the return is no second "first subscription".
    signup = {**sub(0, "started", "2026-04-30"), "type": "user.signed_up"}
    signup.update(user_type="supplier", properties={"channel": "instagram"})
    docs = [
        signup,
        {**sub(1, "started", "2026-05-01"), "type": "supplier.trial_started"},
        sub(2, "started", "2026-05-20", "29.00"),
        sub(3, "cancelled", "2026-06-10"),
        sub(4, "started", "2026-07-15", "29.00"),
    ]
    facts = ("trial", "paid_new")
    for order in itertools.permutations(docs):
        found = movements(*order, cohorts=True)
        picked = {
            day: {k: v for k, v in c.items() if k.startswith(facts)} for day, c in found.items()
        }
        assert {d: c for d, c in picked.items() if c} == {
            "2026-05-01": {
                "trial": 1,
                "trial_converted": 1,
                "trial_converted_30d": 1,
                "trial_converted_90d": 1,
            },
            "2026-05-20": {"paid_new": 1, "paid_new|instagram": 1},
        }
