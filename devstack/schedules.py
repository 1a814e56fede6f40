"""EventBridge `Schedule` events: timers on `rate(...)` and `cron(...)` expressions."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.functions import LocalFunction
from devstack.lambda_events import ACCOUNT, REGION, schedule_event

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT[match.group(2).rstrip("s")]


def _field(spec: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """One cron field: `*`, `?`, numbers, names, lists, ranges and steps."""
    values: set[int] = set()
    for part in spec.split(","):
        part_upper = part.upper()
        for name, number in (names or {}).items():
            part_upper = part_upper.replace(name, str(number))
        base, _, step_text = part_upper.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = int(base)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"cron field {spec!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


@dataclass(frozen=True)
class Cron:
    """AWS cron: minutes hours day-of-month month day-of-week year (UTC); no L, W or #."""

    minutes: set[int]
    hours: set[int]
    days: set[int] | None
    months: set[int]
    weekdays: set[int] | None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        inner = expression.strip()
        if not (inner.startswith("cron(") and inner.endswith(")")):
            raise ValueError(f"not a cron expression: {expression!r}")
        fields = inner[5:-1].split()
        if len(fields) != 6 or any(c in inner for c in "LW#"):
            raise ValueError(f"unsupported cron expression: {expression!r}")
        minute, hour, dom, month, dow, _year = fields
        return cls(
            _field(minute, 0, 59),
            _field(hour, 0, 23),
            None if dom == "?" else _field(dom, 1, 31),
            _field(month, 1, 12, _MONTHS),
            None if dow == "?" else _field(dow, 1, 7, _DAYS),
        )

    def next_after(self, moment: datetime) -> datetime:
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            weekday = (candidate.isoweekday() % 7) + 1  # AWS: 1 = Sunday
            if (
                candidate.minute in self.minutes
                and candidate.hour in self.hours
                and candidate.month in self.months
                and (self.days is None or candidate.day in self.days)
                and (self.weekdays is None or weekday in self.weekdays)
            ):
                return candidate
            candidate += timedelta(minutes=1)
        raise ValueError("cron expression never fires within a year")


@dataclass
class Schedule:
    name: str
    function: LocalFunction
    expression: str
    enabled: bool
    runs: int = 0
    last_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def rule_arn(self) -> str:
        return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.function.name}-{self.name}"

    def next_delay(self, now: datetime) -> float:
        seconds = rate_seconds(self.expression)
        if seconds is not None:
            return float(seconds)
        return (Cron.parse(self.expression).next_after(now) - now).total_seconds()

    def run_now(self) -> Any:
        self.runs += 1
        try:
            result = self.function.invoke(schedule_event(self.rule_arn))
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_error = None
        return result

    def start(self) -> None:
        self.next_delay(datetime.now(UTC))  # fail fast on an unsupported expression
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, name=f"schedule-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.next_delay(datetime.now(UTC))):
            try:
                self.run_now()
            except Exception as exc:
                print(f"[devstack] schedule {self.name} failed: {exc}")
                time.sleep(0)
