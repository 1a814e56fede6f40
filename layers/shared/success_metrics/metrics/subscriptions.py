"""Subscription revenue: each paying supplier's MRR over time and its movements (new business,
expansion, contraction, churn, reactivation), as ChartMogul defines them (docs/metrics.md).

A supplier's subscription events, in the order they occurred (`occurred_at`, then event id),
are replayed into a timeline; the timeline gives, per day and currency, signed movement
counters that the aggregator adds to the day items like every other counter:

- `mrr_new|<cur>`, `mrr_expansion|<cur>`, `mrr_reactivation|<cur>` (positive) and
  `mrr_contraction|<cur>`, `mrr_churn|<cur>` (negative), in cents-exact Decimal;
- `cust_new|<cur>`, `cust_reactivated|<cur>` (+1) and `cust_churned|<cur>` (+1 when a paying
  supplier stops paying).

Each movement is also counted under the supplier's cohort, the month of its first paid
subscription: `cohmrr|<YYYY-MM>|<cur>` (the signed amount), `cohcust|<YYYY-MM>|<cur>` (+1 when it
starts or comes back paying, -1 when it stops), and at its start `cohsize|<YYYY-MM>|<cur>` and
`cohbase|<YYYY-MM>|<cur>` (its first MRR): the retention grid's logo and MRR retention.

So MRR at any moment is the running total of the movements (MRR(start) + movements = MRR(end),
to the cent, by construction), and paying suppliers the running total of new + reactivated -
churned. Because the whole timeline is replayed, an event that arrives late (a plan change that
occurred before a cancellation already counted) moves the right amounts between the right
movements; the aggregator applies the difference between the new replay and what it applied
before (`stores.claims` keeps each supplier's ledger).

The same replay gives the supplier's once-ever facts from its earliest events, so that they
too are exact in any arrival order: its first trial, its conversion (the trial cohort's, within
30 and 90 days too) and its first subscription, by the channel of its signup (`_facts`).

Rules of the replay (each event's `revenue` is the amount per billing interval, in its currency;
`properties.interval` is `month` (default) or `year`, a yearly amount counting as 1/12 a month):
- `supplier.subscription_started`, `supplier.subscription_changed`, `supplier.subscription_renewed`
  set the supplier's MRR to the event's amount: from not paying, that is new business (the first
  time) or a reactivation; while paying, the difference is an expansion or a contraction;
  a renewal without revenue changes nothing;
- `supplier.subscription_cancelled`, or any of them at an amount of 0 (a free plan), ends it: its
  MRR is churned;
- a change of currency is a churn in the old currency and a new business (or reactivation) in
  the new one, so that no figure ever mixes currencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from success_metrics.metrics.contributions import clean

CENT = Decimal("0.01")
# supplier.<event> -> the kind of change it is
KINDS = {
    f"supplier.{event}": kind
    for event, kind in (
        ("trial_started", "trial"),
        ("subscription_started", "started"),
        ("subscription_changed", "changed"),
        ("subscription_renewed", "renewed"),
        ("subscription_cancelled", "cancelled"),
    )
}
Movements = dict[str, dict[str, Decimal]]  # ISO day -> counter -> signed value


@dataclass(frozen=True)
class Change:
    """One subscription event as the replay needs it."""

    occurred_at: str  # UTC, sortable
    day: str  # the day the event counts on, as for every other counter
    event_id: str
    kind: str  # signup, trial, started, changed, renewed, cancelled
    mrr: Decimal | None = None
    currency: str | None = None
    channel: str | None = None  # a signup's acquisition channel

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.occurred_at,
            "day": self.day,
            "id": self.event_id,
            "kind": self.kind,
            "mrr": None if self.mrr is None else str(self.mrr),
            "cur": self.currency,
            "ch": self.channel,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        mrr = None if data.get("mrr") is None else Decimal(data["mrr"])
        return cls(
            data["at"], data["day"], data["id"], data["kind"], mrr, data.get("cur"), data.get("ch")
        )


def monthly(amount: Decimal, interval: Any) -> Decimal:
    """The monthly amount of `amount` per billing interval, to the cent."""
    months = 12 if interval == "year" else 1
    return (amount / months).quantize(CENT, rounding=ROUND_HALF_EVEN)


def change_of(doc: dict[str, Any]) -> Change | None:
    """The subscription change an event document makes, or None for other events (and for a
    subscription event without a supplier)."""
    kind = KINDS.get(str(doc.get("type")))
    if doc.get("type") == "user.signed_up" and doc.get("user_type") == "supplier":
        kind = "signup"
    if kind is None or not doc.get("user_id"):
        return None
    moment = datetime.fromisoformat(str(doc["occurred_at"]).replace("Z", "+00:00"))
    day = moment.date().isoformat()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    occurred = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kind == "signup":
        channel = clean((doc.get("properties") or {}).get("channel") or "unknown")
        return Change(occurred, day, str(doc["id"]), kind, channel=channel)
    if kind in ("trial", "cancelled"):
        return Change(occurred, day, str(doc["id"]), kind)
    revenue = doc.get("revenue") or {}
    try:
        amount = Decimal(str(revenue["amount"]))
        currency = clean(revenue["currency"])
    except (KeyError, TypeError, InvalidOperation):
        if kind == "renewed":
            return None  # a renewal without revenue changes nothing
        amount, currency = Decimal(0), None
    interval = (doc.get("properties") or {}).get("interval", "month")
    return Change(occurred, day, str(doc["id"]), kind, monthly(amount, interval), currency)


def replay(changes: Iterable[Change]) -> Movements:
    """The movements of one supplier's subscription history, by day (see the module's rules)."""
    out: Movements = {}
    cohort = ""  # the month of the first paid subscription

    def add(day: str, name: str, value: Decimal) -> None:
        if value:
            counters = out.setdefault(day, {})
            counters[name] = counters.get(name, Decimal(0)) + value
            if counters[name] == 0:
                del counters[name]

    def move(day: str, movement: str, currency: str, amount: Decimal, customers: int) -> None:
        add(day, f"mrr_{movement}|{currency}", amount)
        add(day, f"cohmrr|{cohort}|{currency}", amount)
        if customers:
            add(day, f"cust_{CUSTOMER[movement]}|{currency}", Decimal(1))
            add(day, f"cohcust|{cohort}|{currency}", Decimal(customers))

    ordered = sorted(changes, key=lambda c: (c.occurred_at, c.event_id))
    _facts(ordered, add)
    mrr, currency, paid_before = Decimal(0), None, False
    for change in ordered:
        if change.kind in ("signup", "trial"):
            continue
        day = change.day
        new_mrr = None if change.kind == "cancelled" else change.mrr
        new_currency = change.currency
        stops = new_mrr is None or not new_mrr or new_currency is None
        if currency is not None and (stops or new_currency != currency):
            move(day, "churn", currency, -mrr, -1)
            mrr, currency = Decimal(0), None
        if new_mrr is None or not new_mrr or new_currency is None:
            continue
        if currency is None and not paid_before:
            cohort = day[:7]
            move(day, "new", new_currency, new_mrr, 1)
            add(day, f"cohsize|{cohort}|{new_currency}", Decimal(1))
            add(day, f"cohbase|{cohort}|{new_currency}", new_mrr)
        elif currency is None:
            move(day, "reactivation", new_currency, new_mrr, 1)
        elif new_mrr != mrr:
            move(day, "expansion" if new_mrr > mrr else "contraction", currency, new_mrr - mrr, 0)
        mrr, currency, paid_before = new_mrr, new_currency, True
    return {day: counters for day, counters in out.items() if counters}


CUSTOMER = {"new": "new", "reactivation": "reactivated", "churn": "churned"}
CONVERSION_WINDOWS = (30, 90)  # trial-to-paid within N days of the trial's start


def _facts(ordered: list[Change], add: Any) -> None:
    """The supplier's once-ever facts, from its earliest events whatever their arrival order:
    its first trial (`trial`, on that day) and whether its first subscription came at or after
    it (`trial_converted`, and within 30 and 90 days, on the trial's day: the trial cohort),
    and its first subscription (`paid_new` and `paid_new|<signup channel>`, on that day)."""
    signup = next((c for c in ordered if c.kind == "signup"), None)
    trial = next((c for c in ordered if c.kind == "trial"), None)
    paid = next((c for c in ordered if c.kind == "started"), None)
    if paid is not None:
        channel = signup.channel if signup is not None and signup.channel else "unknown"
        add(paid.day, "paid_new", Decimal(1))
        add(paid.day, f"paid_new|{channel}", Decimal(1))
    if trial is None:
        return
    add(trial.day, "trial", Decimal(1))
    if paid is not None and paid.day >= trial.day:
        add(trial.day, "trial_converted", Decimal(1))
        waited = (date.fromisoformat(paid.day) - date.fromisoformat(trial.day)).days
        for days in CONVERSION_WINDOWS:
            if waited <= days:
                add(trial.day, f"trial_converted_{days}d", Decimal(1))


def difference(new: Movements, old: Movements) -> dict[date, dict[str, Decimal]]:
    """What to add to the day counters to go from `old` to `new`."""
    deltas: dict[date, dict[str, Decimal]] = {}
    for day in set(new) | set(old):
        names = set(new.get(day, {})) | set(old.get(day, {}))
        changed = {
            name: new.get(day, {}).get(name, Decimal(0)) - old.get(day, {}).get(name, Decimal(0))
            for name in names
        }
        changed = {name: value for name, value in changed.items() if value}
        if changed:
            deltas[date.fromisoformat(day)] = changed
    return deltas


def ledger_key(user_id: str) -> str:
    """The claims-table key of a supplier's subscription ledger (it names the user: an erasure
    deletes it with the user's other claims)."""
    return f"ledger|sub|{clean(user_id, 128)}"


def merge(
    kept: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """A ledger's changes with these added (each event once); whether any was new."""
    known = {e["id"] for e in kept}
    fresh = [e for e in entries if e["id"] not in known]
    merged = sorted([*kept, *fresh], key=lambda e: (e["at"], e["id"]))
    return merged, bool(fresh)


def replay_entries(entries: list[dict[str, Any]]) -> Movements:
    return replay(Change.from_json(e) for e in entries)
