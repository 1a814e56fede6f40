"""Fixed-window rate limits shared by every Lambda instance through atomic DynamoDB counters.

One item per (subject, kind, hour) in the control table: `ADD used :n` guarded by
`used <= limit - n`, so concurrent requests can never push a window past its limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.errors import RateLimitedError
from success_metrics.settings import get_settings

WINDOW_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def consume(
    subject: str, kind: str, amount: int, limit: int, now: float, whose: str = "this organization"
) -> Quota:
    """Take `amount` units from the current window or raise RateLimitedError (429)."""
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    reset = max(1, math.ceil(window + WINDOW_SECONDS - now))
    if amount > limit:
        raise _limited(limit, 0, reset, f"{amount} {kind} exceed the hourly limit of {limit}")
    try:
        result = aws.dynamodb().update_item(
            TableName=get_settings().control_table,
            Key={"pk": {"S": f"ratelimit#{subject}#{kind}#{window}"}},
            UpdateExpression="ADD used :n SET expires_at = if_not_exists(expires_at, :exp)",
            ConditionExpression="attribute_not_exists(used) OR used <= :max",
            ExpressionAttributeValues={
                ":n": {"N": str(amount)},
                ":max": {"N": str(limit - amount)},
                ":exp": {"N": str(window + 2 * WINDOW_SECONDS)},
            },
            ReturnValues="UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        old = aws.old_item(exc)
        used = int(old.get("used", {}).get("N", limit))
        raise _limited(
            limit,
            max(0, limit - used),
            reset,
            f"the hourly limit of {limit} {kind} for {whose} is reached",
        ) from exc
    used = int(result["Attributes"]["used"]["N"])
    return Quota(limit=limit, remaining=max(0, limit - used), reset_seconds=reset)


def _limited(limit: int, remaining: int, reset: int, detail: str) -> RateLimitedError:
    error = RateLimitedError(detail + f"; retry in {reset} seconds")
    error.headers = {**Quota(limit, remaining, reset).headers(), "Retry-After": str(reset)}
    return error
