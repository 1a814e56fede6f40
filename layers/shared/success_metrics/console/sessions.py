"""Console sessions: a signed cookie bound to the API key that opened it.

The cookie is `<org>.<key id>.<expires>.<signature>`, an HMAC-SHA256 over the rest with a
per-organization key derived for this purpose only (`organizations.derived_key`). Every request
reads the key record again, so revoking the key ends its sessions at once; the organization and
the scopes come from the key record, never from the request. The CSRF token of a session is an
HMAC of its cookie under the same key: a page's forms carry it, and a state change without it,
or from another origin, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from success_metrics.errors import ForbiddenError, NotFoundError, UnauthenticatedError
from success_metrics.http import Principal
from success_metrics.models.organizations import ApiKey
from success_metrics.stores import console_links, organizations

PURPOSE = "console-sessions"
COOKIE = "sm_console"
MAX_AGE = 12 * 3600
MAX_COOKIE = 300


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_in(api_key: str, now: float | None = None) -> tuple[str, ApiKey]:
    """A session cookie value for a pasted API key (UnauthenticatedError when it is not one)."""
    return _session_for(organizations.authenticate(api_key.strip()), now)


def sign_in_with_link(token: str, now: float | None = None) -> tuple[str, ApiKey]:
    """A session cookie value for a one-time link (used up by this call)."""
    found = console_links.consume(token, now)
    record = organizations.get_api_key(*found) if found else None
    if record is None:
        raise UnauthenticatedError(
            "this sign-in link is not valid: it was used already, has expired (links last 15 "
            "minutes) or was mistyped; ask for a new one with `smctl console link`"
        )
    if record.revoked_at is not None:
        raise UnauthenticatedError("the API key of this sign-in link has been revoked")
    return _session_for(record, now)


def _session_for(record: ApiKey, now: float | None) -> tuple[str, ApiKey]:
    expires = int(time.time() if now is None else now) + MAX_AGE
    org = organizations.get_organization(record.org_id)
    payload = f"{record.org_id}.{record.key_id}.{expires}"
    key = organizations.derived_key(org, PURPOSE, create=False)
    return f"{payload}.{_mac(key, payload)}", record


def verify(cookie: str, now: float | None = None) -> Principal:
    """The principal a session cookie stands for; UnauthenticatedError when it stands for none
    (malformed, forged, expired, or its key revoked)."""
    parts = cookie.split(".")
    if len(cookie) > MAX_COOKIE or len(parts) != 4 or not all(parts) or not parts[2].isdigit():
        raise UnauthenticatedError("sign in to use the console")
    org_id, key_id, expires, signature = parts
    try:
        org = organizations.get_organization(org_id)
        key = organizations.derived_key(org, PURPOSE, create=False)
    except NotFoundError as exc:
        raise UnauthenticatedError("sign in to use the console") from exc
    expected = _mac(key, ".".join(parts[:3]))
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise UnauthenticatedError("sign in to use the console")
    if int(expires) <= (time.time() if now is None else now):
        raise UnauthenticatedError("the session has expired: sign in again")
    record = organizations.get_api_key(org_id, key_id)
    if record is None or record.revoked_at is not None:
        raise UnauthenticatedError("the API key of this session has been revoked: sign in again")
    return Principal(org_id, key_id, frozenset(s.value for s in record.scopes))


def csrf_token(cookie: str) -> str:
    org_id = cookie.split(".", 1)[0]
    org = organizations.get_organization(org_id)
    return _mac(organizations.derived_key(org, PURPOSE, create=False), "csrf|" + cookie)


def check_csrf(cookie: str, token: str) -> None:
    if not token or not hmac.compare_digest(
        csrf_token(cookie).encode(), token.encode("utf-8", "replace")
    ):
        raise ForbiddenError("the form is stale or came from another site: reload the page")
