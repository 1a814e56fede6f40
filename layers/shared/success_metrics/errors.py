"""Domain errors. Logic raises these; the HTTP edge maps each to an RFC 9457 problem document."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://success-metrics.dev/problems/"


class SuccessMetricsError(Exception):
    """Base of every error the product reports to a caller."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug


class ValidationFailedError(SuccessMetricsError):
    status = 400
    slug = "validation-failed"
    title = "The request is not valid"


class MalformedJsonError(SuccessMetricsError):
    status = 400
    slug = "malformed-json"
    title = "The body is not well-formed JSON"


class UnauthenticatedError(SuccessMetricsError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication failed"


class ForbiddenError(SuccessMetricsError):
    status = 403
    slug = "forbidden"
    title = "The credential lacks the required scope"


class NotFoundError(SuccessMetricsError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(SuccessMetricsError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class GoneError(SuccessMetricsError):
    status = 410
    slug = "gone"
    title = "No longer available"


class PayloadTooLargeError(SuccessMetricsError):
    status = 413
    slug = "payload-too-large"
    title = "The request is too large"


class UnsupportedMediaTypeError(SuccessMetricsError):
    status = 415
    slug = "unsupported-media-type"
    title = "The body must be JSON"


class RateLimitedError(SuccessMetricsError):
    status = 429
    slug = "rate-limited"
    title = "Rate limit exceeded"


class ConfigurationError(Exception):
    """The deployment is misconfigured (missing table, key...): an operator problem, not a 4xx."""
