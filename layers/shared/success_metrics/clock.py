"""Time, in one place, so tests can freeze it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def utcnow() -> datetime:
    return datetime.fromtimestamp(now(), UTC)
