"""Deterministic, realistic demo events for one wedding season.

The local stack seeds its demo organization with these events, tests use them as realistic input
and benchmarks as a reproducible workload. The same arguments always give the same events, in the
wire format of the ingestion contract (SPEC section 3), and every event validates against
`success_metrics.models.events.Event` as long as the season does not end in the future.

The mix exercises every success metric: suppliers sign up from tagged channels, start trials, some
subscribe, renew and cancel; couples create weddings, complete milestones, search and book
suppliers and pay deposits; users invite others who sign up and accept; sessions and feature use
come from mobile, desktop and tablet in EU/EEA and non-EU countries; some users withdraw analytics
consent; staff record weekly marketing spend per paid channel. Peak months (May to October) bring
more couple activity and higher booking conversion than off-peak months.

Events are produced one actor at a time (a user's whole story, in causal order), so `iter_events`
holds only one story plus a bounded pool of recent suppliers, whatever the size.
"""

from __future__ import annotations

import random
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, islice
from operator import itemgetter
from typing import Any, Final

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

CURRENCY: Final = "GBP"
STAFF_USER_ID: Final = "staff_marketing"

CHANNELS: Final = ("instagram", "google", "referral", "wedding_fair", "organic")
PAID_CHANNELS: Final = ("instagram", "google", "wedding_fair")
VENDOR_CATEGORIES: Final = ("photographer", "venue", "florist", "caterer", "band", "planner")
MILESTONES: Final = (
    "venue_booked",
    "photographer_booked",
    "dress_chosen",
    "guest_list_done",
    "invites_sent",
    "menu_chosen",
    "rings_bought",
)
COUPLE_FEATURES: Final = ("budget_planner", "guest_list", "seating_chart", "checklist", "messaging")
SUPPLIER_FEATURES: Final = ("enquiry_inbox", "calendar", "invoicing", "portfolio", "messaging")
PLANS: Final = (("basic", "19.00"), ("pro", "29.00"), ("premium", "59.00"))
# Suppliers in the EU/EEA subscribe in euros (the platform's second currency), at these
# monthly prices; a yearly plan costs ten months.
EUR_PRICES: Final = {"basic": "22.00", "pro": "34.00", "premium": "69.00"}
SUBSCRIPTION_CURRENCIES: Final = ("GBP", "EUR")
DEVICES: Final = ("mobile", "desktop", "tablet")
EU_EEA_COUNTRIES: Final = frozenset({"FR", "DE", "IE", "ES", "IT", "NL"})
PEAK_MONTHS: Final = range(5, 11)

_ORG_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:.]{0,47}$")

_CHANNEL_WEIGHTS = (28, 25, 10, 12, 25)
_CAMPAIGNS: dict[str, tuple[str, ...]] = {
    "instagram": ("real_weddings_reels", "engaged_stories"),
    "google": ("search_brand", "search_venues_near_me"),
    "wedding_fair": ("national_wedding_show", "county_fair_circuit"),
}
# What one signup costs on each paid channel: weekly spend follows the expected signups.
_COST_PER_SIGNUP = {"instagram": 9.0, "google": 14.0, "wedding_fair": 30.0}
_PLAN_WEIGHTS = (45, 40, 15)
_DEVICE_WEIGHTS = (60, 32, 8)
_CUMULATIVE_CHANNELS = tuple(accumulate(_CHANNEL_WEIGHTS))
_CUMULATIVE_DEVICES = tuple(accumulate(_DEVICE_WEIGHTS))
_CUMULATIVE_PLANS = tuple(accumulate(_PLAN_WEIGHTS))
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 4, 6, 7, 8, 8, 9, 8, 8, 8, 8, 9, 11, 13, 14, 12, 8, 4)
_CANCEL_REASONS = ("too_expensive", "season_over", "missing_feature", "switched_tool", "retired")
_DEPOSITS = {
    "photographer": (300, 900),
    "venue": (1000, 4000),
    "florist": (150, 500),
    "caterer": (500, 2500),
    "band": (200, 800),
    "planner": (400, 1500),
}
_BOOKING_MILESTONES = {"venue": "venue_booked", "photographer": "photographer_booked"}
_FREE_MILESTONES = tuple(m for m in MILESTONES if m not in _BOOKING_MILESTONES.values())

_PLACES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], int], ...] = (
    ("GB", ("London", "Greater Manchester", "Edinburgh", "Bristol", "Yorkshire"), ("en-GB",), 40),
    ("IE", ("Dublin", "Cork", "Galway"), ("en-IE", "ga-IE"), 6),
    ("FR", ("Île-de-France", "Provence-Alpes-Côte d'Azur", "Occitanie"), ("fr-FR",), 8),
    ("DE", ("Bavaria", "Berlin", "Hamburg"), ("de-DE",), 6),
    ("ES", ("Catalonia", "Andalusia", "Community of Madrid"), ("es-ES", "ca-ES"), 5),
    ("IT", ("Tuscany", "Lombardy", "Lazio"), ("it-IT",), 6),
    ("NL", ("North Holland", "Utrecht"), ("nl-NL",), 3),
    ("US", ("California", "New York", "Texas"), ("en-US", "es-US"), 14),
    ("AU", ("New South Wales", "Victoria"), ("en-AU",), 6),
    ("CA", ("Ontario", "British Columbia", "Quebec"), ("en-CA", "fr-CA"), 6),
)
_PLACE_WEIGHTS = tuple(accumulate(place[3] for place in _PLACES))
_BUDGET_MEDIAN = {"GB": 20000, "IE": 26000, "US": 30000, "AU": 32000, "CA": 28000}
_IP_PREFIXES = ("192.0.2", "198.51.100", "203.0.113")
_USER_AGENTS: dict[str, tuple[str, ...]] = {
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    ),
    "desktop": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    ),
}
# Events a browser or app sends itself, and so carry its IP address and user agent.
_CLIENT_TYPES = frozenset({"user.signed_up", "session.started", "feature.used"})

# Shares of new stories: anonymous visitors, then suppliers; the rest are couples.
_VISITOR_SHARE = 0.07
_SUPPLIER_SHARE = 0.33
# Average events per story at the default mix; sizes the marketing schedule and its spend.
_EVENTS_PER_STORY = 19.0
_SUPPLIER_POOL = 64


def generate(
    size: int,
    seed: int = 7,
    season_start: date = date(2026, 5, 1),
    season_end: date = date(2026, 10, 31),
    org_tag: str = "demo",
) -> list[dict[str, Any]]:
    """Exactly `size` demo events; the same arguments always give the same list."""
    return list(iter_events(size, seed, season_start, season_end, org_tag))


def subscription_book(
    suppliers: int = 40,
    seed: int = 7,
    season_start: date = date(2026, 5, 1),
    season_end: date = date(2026, 10, 31),
    org_tag: str = "demo",
) -> list[dict[str, Any]]:
    """The paying suppliers an established platform already has when the season starts: each
    subscribed in the six months before it, on a monthly or yearly plan, in pounds or (in the
    EU) euros, and then renews, upgrades, downgrades, cancels and sometimes comes back, until
    the season ends. Gives the subscription figures (MRR and its movements, churn, NRR, LTV) a
    base to move from; ids are `evt_{org_tag}_{seed}_book_{n:05d}`."""
    generator = _Generator(suppliers * 12, seed + 1, season_start, season_end, org_tag)
    rng = generator.rng
    events: list[dict[str, Any]] = []
    for _ in range(suppliers):
        generator.counter += 1
        user_id = generator._ref("sub")
        timeline = _Timeline(generator._profile(user_id, "supplier"))
        started = generator.start_ts - rng.randint(1, 180) * DAY + rng.randrange(DAY)
        channel = rng.choices(CHANNELS, cum_weights=_CUMULATIVE_CHANNELS)[0]
        plan = rng.choices(PLANS, cum_weights=_CUMULATIVE_PLANS)[0][0]
        generator._paying(timeline, started, plan, channel)
        # Their subscription events only: their sessions are not the point here.
        story = timeline.render(generator.end_ts)
        events += [e for e in story if e["type"].startswith("supplier.subscription_")]
    prefix = f"evt_{org_tag}_{seed}_book_"
    for n, event in enumerate(events):
        event["id"] = f"{prefix}{n:05d}"
    return events


def organization_events(size: int, seed: int = 7) -> list[dict[str, Any]]:
    """What the local stack loads into its demo organization: its paying suppliers'
    subscription book (none when `size` is 0) and `size` events of the season."""
    book = subscription_book(seed=seed) if size else []
    return book + generate(size, seed=seed)


def iter_events(
    size: int,
    seed: int = 7,
    season_start: date = date(2026, 5, 1),
    season_end: date = date(2026, 10, 31),
    org_tag: str = "demo",
) -> Iterator[dict[str, Any]]:
    """Stream exactly `size` demo events with occurred_at in [season_start, season_end] (UTC).

    Events come one actor's story at a time, each story in causal order; ids are
    `evt_{org_tag}_{seed}_{n:07d}` in stream order.
    """
    if size < 0:
        raise ValueError("size must not be negative")
    if season_end < season_start:
        raise ValueError("season_end is before season_start")
    if not _ORG_TAG.match(org_tag):
        raise ValueError("org_tag must be 1-48 letters, digits, '_', '-', ':' or '.'")
    generator = _Generator(size, seed, season_start, season_end, org_tag)
    prefix = f"evt_{org_tag}_{seed}_"
    for n, event in enumerate(islice(generator.stream(), size)):
        event["id"] = f"{prefix}{n:07d}"
        yield event


def batches(events: Iterable[dict[str, Any]], size: int = 500) -> Iterator[list[dict[str, Any]]]:
    """Consecutive chunks of at most `size` events (500 is the ingestion batch limit)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    iterator = iter(events)
    while chunk := list(islice(iterator, size)):
        yield chunk


def is_peak(ts: int) -> bool:
    """Whether a unix time falls in the peak wedding season (May to October)."""
    return time.gmtime(ts).tm_mon in PEAK_MONTHS


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _money(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


@dataclass(slots=True)
class _Profile:
    user_id: str | None
    anonymous_id: str | None
    user_type: str | None
    country: str
    region: str
    locale: str
    device: str
    ip: str | None
    agent: int
    analytics: bool
    marketing: bool


@dataclass(slots=True)
class _Invite:
    inviter: str
    invite_id: str
    user_type: str
    sent_at: int


_Item = tuple[int, int, str, dict[str, Any], str | None, str | None, tuple[bool, bool] | None]


class _Timeline:
    """One actor's events, collected in any order and rendered sorted by time."""

    def __init__(self, profile: _Profile) -> None:
        self.profile = profile
        self.items: list[_Item] = []

    def add(
        self,
        ts: int,
        event_type: str,
        properties: dict[str, Any] | None = None,
        *,
        revenue: str | tuple[str, str] | None = None,
        device: str | None = None,
        consent: tuple[bool, bool] | None = None,
    ) -> int:
        self.items.append(
            (ts, len(self.items), event_type, properties or {}, revenue, device, consent)
        )
        return ts

    def render(self, end_ts: int) -> list[dict[str, Any]]:
        profile = self.profile
        analytics, marketing = profile.analytics, profile.marketing
        events: list[dict[str, Any]] = []
        for ts, _, event_type, properties, revenue, device, consent in sorted(
            self.items, key=itemgetter(0, 1)
        ):
            if ts > end_ts:
                break
            if consent is not None:
                analytics, marketing = consent
            event: dict[str, Any] = {"id": "", "type": event_type, "occurred_at": _iso(ts)}
            if profile.user_id is not None:
                event["user_id"] = profile.user_id
            else:
                event["anonymous_id"] = profile.anonymous_id
            if profile.user_type is not None:
                event["user_type"] = profile.user_type
            event["properties"] = properties
            if revenue is not None:
                amount, currency = revenue if isinstance(revenue, tuple) else (revenue, CURRENCY)
                event["revenue"] = {"amount": amount, "currency": currency}
            context: dict[str, Any] = {
                "country": profile.country,
                "region": profile.region,
                "locale": profile.locale,
            }
            if device is not None:
                context["device"] = device
                if profile.ip is not None and event_type in _CLIENT_TYPES:
                    context["ip"] = profile.ip
                    agents = _USER_AGENTS[device]
                    context["user_agent"] = agents[profile.agent % len(agents)]
            event["context"] = context
            event["consent"] = {"analytics": analytics, "marketing": marketing}
            events.append(event)
        return events


class _Generator:
    def __init__(
        self, size: int, seed: int, season_start: date, season_end: date, org_tag: str
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
        self.refs = f"{org_tag}_{seed}"
        self.start_ts = int(datetime.combine(season_start, datetime.min.time(), UTC).timestamp())
        self.end_ts = self.start_ts + ((season_end - season_start).days + 1) * DAY - 1
        self.days = (season_end - season_start).days + 1
        self.season_start = season_start
        day_weights = [self._day_weight(season_start + timedelta(days=d)) for d in range(self.days)]
        self.day_cum = list(accumulate(day_weights))
        self.hour_cum = list(accumulate(_HOUR_WEIGHTS))
        self.stories = max(1.0, size / _EVENTS_PER_STORY)
        self.weeks = [
            (d, min(7, self.days - d), sum(day_weights[d : d + 7])) for d in range(0, self.days, 7)
        ]
        self.total_weight = self.day_cum[-1]
        self.suppliers: dict[str, deque[tuple[str, int]]] = {
            category: deque(maxlen=_SUPPLIER_POOL) for category in VENDOR_CATEGORIES
        }
        self.invites: deque[_Invite] = deque()
        self.counter = 0

    def _ref(self, kind: str, part: int | None = None) -> str:
        """An id for something in the current story, unique per org_tag and seed."""
        ref = f"{kind}_{self.refs}_{self.counter:06d}"
        return ref if part is None else f"{ref}_{part}"

    @staticmethod
    def _day_weight(day: date) -> float:
        if day.month in PEAK_MONTHS:
            weight = 1.5
        elif day.month == 1:
            weight = 1.25
        elif day.month == 12:
            weight = 0.8
        else:
            weight = 1.0
        return weight * (1.2 if day.weekday() >= 5 else 1.0)

    def stream(self) -> Iterator[dict[str, Any]]:
        week = 0
        story = 0
        while True:
            while week < len(self.weeks) and story >= week * self.stories / len(self.weeks):
                yield from self._marketing_week(*self.weeks[week])
                week += 1
            yield from self._story()
            story += 1

    def _story(self) -> list[dict[str, Any]]:
        self.counter += 1
        if self.invites:
            invite = self.invites.popleft()
            signup = invite.sent_at + self.rng.randint(10 * MINUTE, 5 * DAY)
            if signup <= self.end_ts:
                if invite.user_type == "supplier":
                    return self._supplier(signup, "referral", None, invite)
                return self._couple(signup, "referral", None, invite)
        kind = self.rng.random()
        if kind < _VISITOR_SHARE:
            return self._visitor()
        signup = self._random_ts()
        channel = self.rng.choices(CHANNELS, cum_weights=_CUMULATIVE_CHANNELS)[0]
        campaigns = _CAMPAIGNS.get(channel)
        campaign = self.rng.choice(campaigns) if campaigns and self.rng.random() < 0.6 else None
        if kind < _VISITOR_SHARE + _SUPPLIER_SHARE:
            return self._supplier(signup, channel, campaign, None)
        return self._couple(signup, channel, campaign, None)

    def _random_ts(self) -> int:
        rng = self.rng
        day = rng.choices(range(self.days), cum_weights=self.day_cum)[0]
        hour = rng.choices(range(24), cum_weights=self.hour_cum)[0]
        return self.start_ts + day * DAY + hour * HOUR + rng.randrange(HOUR)

    def _profile(self, user_id: str | None, user_type: str | None) -> _Profile:
        rng = self.rng
        country, regions, locales, _ = rng.choices(_PLACES, cum_weights=_PLACE_WEIGHTS)[0]
        with_client = rng.random() < 0.55
        return _Profile(
            user_id=user_id,
            anonymous_id=None,
            user_type=user_type,
            country=country,
            region=rng.choice(regions),
            locale=rng.choice(locales),
            device=rng.choices(DEVICES, cum_weights=_CUMULATIVE_DEVICES)[0],
            ip=f"{rng.choice(_IP_PREFIXES)}.{rng.randint(1, 254)}" if with_client else None,
            agent=rng.randrange(8),
            analytics=rng.random() < 0.9,
            marketing=rng.random() < 0.45,
        )

    def _device(self, profile: _Profile) -> str:
        if self.rng.random() < 0.75:
            return profile.device
        return self.rng.choices(DEVICES, cum_weights=_CUMULATIVE_DEVICES)[0]

    def _session(
        self, timeline: _Timeline, ts: int, features: Sequence[str], most: int
    ) -> tuple[str, int]:
        """A session with up to `most` features used; the device and the time it ends."""
        rng = self.rng
        device = self._device(timeline.profile)
        timeline.add(ts, "session.started", {"entry": rng.choice(("app", "web"))}, device=device)
        for feature in rng.sample(features, rng.randint(0, most)):
            ts += rng.randint(20, 15 * MINUTE)
            timeline.add(ts, "feature.used", {"feature": feature}, device=device)
        return device, ts + rng.randint(20, 5 * MINUTE)

    def _onboard(
        self,
        timeline: _Timeline,
        signup: int,
        properties: dict[str, Any],
        invite: _Invite | None,
        features: Sequence[str],
    ) -> None:
        rng = self.rng
        profile = timeline.profile
        device = self._device(profile)
        timeline.add(signup, "user.signed_up", properties, device=device)
        if invite is not None:
            timeline.add(
                signup + rng.randint(5, 90),
                "referral.invite_accepted",
                {"inviter": invite.inviter, "invite_id": invite.invite_id},
                device=device,
            )
        if rng.random() < 0.3:
            timeline.add(
                signup + rng.randint(100, 200),
                "consent.updated",
                {"source": "cookie_banner"},
                device=device,
                consent=(profile.analytics, profile.marketing),
            )
        self._session(timeline, signup + rng.randint(201, 400), features, 2)
        if profile.analytics and rng.random() < 0.08:
            timeline.add(
                signup + rng.randint(DAY, 90 * DAY),
                "consent.updated",
                {"source": "privacy_settings"},
                consent=(False, profile.marketing),
            )
        elif rng.random() < 0.08:
            timeline.add(
                signup + rng.randint(DAY, 90 * DAY),
                "consent.updated",
                {"source": "email_preferences"},
                consent=(profile.analytics, not profile.marketing),
            )

    def _invite(
        self, timeline: _Timeline, inviter: str, user_type: str, ts: int, role: str, accept: float
    ) -> None:
        rng = self.rng
        invite_id = self._ref("inv", len(timeline.items))
        medium = rng.choice(("email", "whatsapp", "link"))
        timeline.add(
            ts, "referral.invite_sent", {"invite_id": invite_id, "medium": medium, "role": role}
        )
        if ts <= self.end_ts and rng.random() < accept:
            self.invites.append(_Invite(inviter, invite_id, user_type, ts))

    def _supplier(
        self, signup: int, channel: str, campaign: str | None, invite: _Invite | None
    ) -> list[dict[str, Any]]:
        rng = self.rng
        user_id = self._ref("sup")
        timeline = _Timeline(self._profile(user_id, "supplier"))
        category = rng.choice(VENDOR_CATEGORIES)
        properties: dict[str, Any] = {"channel": channel, "vendor_category": category}
        if campaign is not None:
            properties["campaign"] = campaign
        if invite is not None:
            properties["inviter"] = invite.inviter
        self._onboard(timeline, signup, properties, invite, SUPPLIER_FEATURES)
        self.suppliers[category].append((user_id, signup))
        if rng.random() < 0.1:
            for _ in range(rng.randint(1, 2)):
                self._invite(
                    timeline,
                    user_id,
                    "supplier",
                    signup + rng.randint(HOUR, 30 * DAY),
                    "supplier",
                    0.4,
                )
        if rng.random() < 0.88:
            self._trial(timeline, signup + rng.randint(10 * MINUTE, 2 * DAY), channel)
        return timeline.render(self.end_ts)

    def _trial(self, timeline: _Timeline, trial: int, channel: str) -> None:
        rng = self.rng
        timeline.add(trial, "supplier.trial_started", {"plan": "trial", "trial_days": 14})
        self._active(timeline, trial, trial + 14 * DAY, rng.randint(1, 5))
        if rng.random() >= (0.40 if is_peak(trial) else 0.28):
            return
        plan = rng.choices(PLANS, cum_weights=_CUMULATIVE_PLANS)[0][0]
        self._paying(timeline, trial + rng.randint(3 * DAY, 14 * DAY), plan, channel)

    def _paying(self, timeline: _Timeline, started: int, plan: str, channel: str) -> None:
        """A supplier's paying life from `started`; a fifth of those who cancel come back
        within three months (a reactivation)."""
        rng = self.rng
        ended = self._subscription(timeline, started, plan, channel)
        if ended is not None and rng.random() < 0.2:
            back = ended + rng.randint(20 * DAY, 90 * DAY)
            if back <= self.end_ts:
                again = rng.choices(PLANS, cum_weights=_CUMULATIVE_PLANS)[0][0]
                self._subscription(timeline, back, again, channel)

    def _price(self, timeline: _Timeline, plan: str, yearly: bool) -> tuple[str, str]:
        """A plan's price per billing interval, in the supplier's currency."""
        euros = timeline.profile.country in EU_EEA_COUNTRIES
        monthly = EUR_PRICES[plan] if euros else dict(PLANS)[plan]
        amount = Decimal(monthly) * (10 if yearly else 1)
        return f"{amount:.2f}", "EUR" if euros else CURRENCY

    def _subscription(
        self, timeline: _Timeline, started: int, plan: str, channel: str
    ) -> int | None:
        """A subscription from `started`: renewals, upgrades and downgrades, until it is
        cancelled (returns when) or the season ends (None)."""
        rng = self.rng
        yearly = rng.random() < 0.2
        interval, length = ("year", 365 * DAY) if yearly else ("month", 30 * DAY)
        names = [name for name, _ in PLANS]
        timeline.add(
            started,
            "supplier.subscription_started",
            {"plan": plan, "interval": interval, "channel": channel},
            revenue=self._price(timeline, plan, yearly),
        )
        period = 1
        while (begin := started + length * (period - 1)) <= self.end_ts:
            if rng.random() < (0.18 if period == 1 else 0.07) * (3 if yearly else 1):
                cancelled = begin + rng.randint(5 * DAY, length - DAY)
                timeline.add(
                    cancelled,
                    "supplier.subscription_cancelled",
                    {"plan": plan, "reason": rng.choice(_CANCEL_REASONS)},
                )
                return cancelled
            self._active(timeline, begin, begin + 30 * DAY, rng.randint(1, 3))
            # Upgrades and downgrades within the period.
            step = rng.random()
            index = names.index(plan)
            if (step < 0.10 and index + 1 < len(names)) or (step > 0.95 and index > 0):
                plan = names[index + 1] if step < 0.10 else names[index - 1]
                timeline.add(
                    begin + rng.randint(2 * DAY, 25 * DAY),
                    "supplier.subscription_changed",
                    {
                        "plan": plan,
                        "interval": interval,
                        "change": "upgrade" if step < 0.10 else "downgrade",
                    },
                    revenue=self._price(timeline, plan, yearly),
                )
            period += 1
            timeline.add(
                begin + length,
                "supplier.subscription_renewed",
                {"plan": plan, "interval": interval, "period": period},
                revenue=self._price(timeline, plan, yearly),
            )
        return None

    def _active(self, timeline: _Timeline, begin: int, end: int, sessions: int) -> None:
        rng = self.rng
        for _ in range(sessions):
            ts = rng.randint(begin + MINUTE, end - HOUR)
            device, ts = self._session(timeline, ts, SUPPLIER_FEATURES, 2)
            if rng.random() < 0.35:
                source = rng.choice(("enquiry", "booking", "manual"))
                timeline.add(
                    ts,
                    "supplier.client_added",
                    {
                        "client_id": self._ref("cli", len(timeline.items)),
                        "source": source,
                    },
                    device=device,
                )

    def _couple(
        self, signup: int, channel: str, campaign: str | None, invite: _Invite | None
    ) -> list[dict[str, Any]]:
        rng = self.rng
        user_id = self._ref("cpl")
        timeline = _Timeline(self._profile(user_id, "couple"))
        properties: dict[str, Any] = {"channel": channel}
        if campaign is not None:
            properties["campaign"] = campaign
        if invite is not None:
            properties["inviter"] = invite.inviter
        self._onboard(timeline, signup, properties, invite, COUPLE_FEATURES)
        if rng.random() < 0.9:
            self._wedding(timeline, user_id, signup + rng.randint(10 * MINUTE, 3 * DAY))
        return timeline.render(self.end_ts)

    def _wedding(self, timeline: _Timeline, user_id: str, created: int) -> None:
        rng = self.rng
        profile = timeline.profile
        wedding_id = self._ref("wed")
        wedding_date = date(*time.gmtime(created)[:3]) + timedelta(days=rng.randint(183, 730))
        if rng.random() < 0.75:
            wedding_date += timedelta(days=(5 - wedding_date.weekday()) % 7)
        median = _BUDGET_MEDIAN.get(profile.country, 24000)
        budget = max(3000, round(rng.lognormvariate(0, 0.45) * median / 500) * 500)
        timeline.add(
            created,
            "couple.wedding_created",
            {
                "wedding_id": wedding_id,
                "wedding_date": wedding_date.isoformat(),
                "budget": f"{budget}.00",
                "guest_count": rng.randint(20, 180),
            },
        )
        window = min(self.end_ts, created + rng.randint(30, 200) * DAY)
        open_categories = list(VENDOR_CATEGORIES)
        free_milestones = list(_FREE_MILESTONES)
        invites = 0
        sessions = sorted(
            rng.randint(created + MINUTE, max(window, created + DAY))
            for _ in range(rng.randint(2, 9))
        )
        for start in sessions:
            if not is_peak(start) and rng.random() < 0.4:
                continue
            device, ts = self._session(timeline, start, COUPLE_FEATURES, 3)
            if open_categories and rng.random() < 0.5:
                self._search(
                    timeline, ts, rng.choice(open_categories), wedding_id, open_categories, device
                )
            if free_milestones and rng.random() < 0.3:
                milestone = free_milestones.pop(rng.randrange(len(free_milestones)))
                timeline.add(
                    ts + rng.randint(MINUTE, HOUR),
                    "couple.milestone_completed",
                    {"milestone": milestone, "wedding_id": wedding_id},
                    device=device,
                )
            if invites < 3 and rng.random() < 0.12:
                invites += 1
                role = rng.choice(("partner", "friend", "planner"))
                self._invite(
                    timeline, user_id, "couple", ts + rng.randint(MINUTE, HOUR), role, 0.45
                )

    def _search(
        self,
        timeline: _Timeline,
        ts: int,
        category: str,
        wedding_id: str,
        open_categories: list[str],
        device: str,
    ) -> None:
        rng = self.rng
        timeline.add(
            ts,
            "couple.vendor_searched",
            {
                "vendor_category": category,
                "wedding_id": wedding_id,
                "region": timeline.profile.region,
            },
            device=device,
        )
        if rng.random() >= (0.5 if is_peak(ts) else 0.22):
            return
        supplier_id = self._supplier_for(category, ts)
        if supplier_id is None:
            return
        open_categories.remove(category)
        booked = ts + rng.randint(HOUR, 10 * DAY)
        booking = {
            "supplier_id": supplier_id,
            "vendor_category": category,
            "wedding_id": wedding_id,
        }
        timeline.add(booked, "couple.vendor_booked", booking)
        if rng.random() < 0.75:
            low, high = _DEPOSITS[category]
            deposit = rng.randint(low, high) * 100
            timeline.add(
                booked + rng.randint(MINUTE, 2 * DAY),
                "payment.succeeded",
                {**booking, "kind": "deposit"},
                revenue=_money(deposit),
            )
        milestone = _BOOKING_MILESTONES.get(category)
        if milestone is not None:
            timeline.add(
                booked + rng.randint(MINUTE, HOUR),
                "couple.milestone_completed",
                {"milestone": milestone, "wedding_id": wedding_id},
            )

    def _supplier_for(self, category: str, ts: int) -> str | None:
        pool = self.suppliers[category]
        if not pool:
            return None
        earlier = [supplier for supplier, signup in pool if signup < ts]
        if earlier:
            return self.rng.choice(earlier)
        return self.rng.choice(pool)[0]

    def _visitor(self) -> list[dict[str, Any]]:
        rng = self.rng
        profile = self._profile(None, None)
        profile.anonymous_id = self._ref("anon")
        timeline = _Timeline(profile)
        first = self._random_ts()
        for visit in range(rng.randint(1, 3)):
            self._session(timeline, first + visit * rng.randint(HOUR, 3 * DAY), (), 0)
        return timeline.render(self.end_ts)

    def _marketing_week(self, day: int, days: int, weight: float) -> Iterator[dict[str, Any]]:
        rng = self.rng
        signups = self.stories * (1 - _VISITOR_SHARE) * weight / self.total_weight
        week_starting = (self.season_start + timedelta(days=day)).isoformat()
        for slot, channel in enumerate(PAID_CHANNELS):
            recorded = self.start_ts + day * DAY + 9 * HOUR + slot * 20 * MINUTE
            share = _CHANNEL_WEIGHTS[CHANNELS.index(channel)] / sum(_CHANNEL_WEIGHTS)
            spend = signups * share * _COST_PER_SIGNUP[channel] * rng.uniform(0.8, 1.2)
            yield {
                "id": "",
                "type": "marketing.spend_recorded",
                "occurred_at": _iso(recorded + rng.randrange(20 * MINUTE)),
                "user_id": STAFF_USER_ID,
                "user_type": "staff",
                "properties": {
                    "channel": channel,
                    "week_starting": week_starting,
                    "days": days,
                },
                "revenue": {"amount": _money(max(2000, round(spend * 100))), "currency": CURRENCY},
                "context": {},
            }
