"""GDPR erasure: the job, its worker steps, the suppression list and the platform deletions."""

from __future__ import annotations

from typing import Any

from success_metrics.errors import ValidationFailedError

_MEANING = {"user_id": "the user's id", "anonymous_id": "the anonymous (device or cookie) id"}


def checked_id(body: dict[str, Any], name: str) -> str:
    """`body[name]`, an id as events carry it (`user_id` or `anonymous_id`), checked."""
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or any(c.isspace() for c in value):
        raise ValidationFailedError(f"{name} is {_MEANING[name]} as the events carry it")
    return value


def user_id_of(body: Any, allowed: set[str], shape: str) -> str:
    """The `user_id` of a GDPR request body, checked; `shape` describes the body in errors."""
    if not isinstance(body, dict) or set(body) - allowed:
        raise ValidationFailedError(f"the body is {shape}")
    return checked_id(body, "user_id")
