"""GDPR erasure: the job, its worker steps, the suppression list and the platform deletions."""

from __future__ import annotations

from typing import Any

from success_metrics.errors import ValidationFailedError


def user_id_of(body: Any, allowed: set[str], shape: str) -> str:
    """The `user_id` of a GDPR request body, checked; `shape` describes the body in errors."""
    if not isinstance(body, dict) or set(body) - allowed:
        raise ValidationFailedError(f"the body is {shape}")
    user = body.get("user_id")
    if not isinstance(user, str) or not 1 <= len(user) <= 128 or any(c.isspace() for c in user):
        raise ValidationFailedError("user_id is the user's id as the events carry it")
    return user
