"""Faults the sink injects: an error status, a delay or a dropped connection, for every
matching request, a seeded fraction of them, or the next N."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from devstack.sink.common import _json, _mixpanel_error, _phrase, _Response, _text


@dataclass
class Fault:
    """What to do to requests whose path starts with `path_prefix` (all requests if None).

    Each matching request is hit with probability `rate` (drawn from a `random.Random(seed)`), and
    only the next `count` hits happen if `count` is set. A hit waits `latency_ms`, then: with
    `timeout`, closes the connection without answering; else answers `status` in the
    platform's error shape (429 and 503 carry `Retry-After: retry_after`, default 1); with
    `status` None, the request is only delayed and then answered normally.
    """

    status: int | None = 500
    rate: float = 1.0
    latency_ms: int = 0
    path_prefix: str | None = None
    retry_after: int | None = None
    count: int | None = None
    timeout: bool = False
    seed: int | None = None
    # A mix: each hit picks one of these at random instead of `status`/`timeout`
    # (an HTTP status, or "timeout"), e.g. (500, 429, "timeout").
    choices: tuple[int | str, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is not None:
            self.choices = tuple(self.choices)
            for choice in self.choices:
                if choice != "timeout" and not (isinstance(choice, int) and 100 <= choice <= 599):
                    raise ValueError(f"choices are HTTP statuses or 'timeout', not {choice!r}")
        if self.status is not None and not (
            isinstance(self.status, int) and 100 <= self.status <= 599
        ):
            raise ValueError(f"status must be an HTTP status code or null, not {self.status!r}")
        if not isinstance(self.rate, int | float) or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate!r}")
        if not isinstance(self.latency_ms, int | float) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, not {self.latency_ms!r}")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 0):
            raise ValueError(f"count must be a non-negative integer or null, not {self.count!r}")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError(
                f"retry_after must be a non-negative integer, not {self.retry_after!r}"
            )
        if self.path_prefix is not None and not isinstance(self.path_prefix, str):
            raise ValueError("path_prefix must be a string or null")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the control API's JSON; `{"latency_ms": n}` alone means delay, not fail."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        values = dict(data)
        if "status" not in values and values.get("latency_ms") and not values.get("timeout"):
            values["status"] = None
        return cls(**values)

    def retry_after_header(self) -> str | None:
        if self.retry_after is not None:
            return str(self.retry_after)
        if self.status in (429, 503):
            return "1"
        return None


class _FaultState:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.count
        self.rng = random.Random(fault.seed)  # noqa: S311 - reproducible fault injection, not crypto

    def hit(self, path: str) -> bool:
        """Whether this request is hit; the caller holds the sink's lock."""
        prefix = self.fault.path_prefix
        if prefix is not None and not path.startswith(prefix):
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rng.random() >= self.fault.rate:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.fault), "remaining": self.remaining}


def _fault_response(fault: Fault, platform: str) -> _Response:
    status = fault.status if fault.status is not None else 500
    headers: dict[str, str] = {}
    retry_after = fault.retry_after_header()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if platform == "mixpanel":
        error = (
            "Project exceeded rate limits. Please retry the request with exponential backoff."
            if status == 429
            else "sink fault injection"
        )
        response = _mixpanel_error(status, error)
    elif platform == "slack":
        slack_error = {429: "rate_limited", 500: "rollup_error"}.get(status)
        response = _text(status, slack_error or _phrase(status).lower().replace(" ", "_"))
    elif platform in ("ga4", "ga4_debug"):
        response = _Response(status, b"", "text/plain")
    else:
        response = _json(status, {"error": _phrase(status), "fault": True})
    response.headers.update(headers)
    return response
