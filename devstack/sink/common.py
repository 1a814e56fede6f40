"""What every fake platform of the sink shares: limits, responses, body decoding."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)


MAX_RECORDED = 100_000


MAX_REQUEST_BYTES = 64 * 1024 * 1024  # hard cap on what the sink reads or inflates at all


PLATFORMS = ("mixpanel", "ga4", "ga4_debug", "slack", "webhook")


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # added to the recorded request


def _json(status: int, payload: Any, **headers: str) -> _Response:
    return _Response(status, json.dumps(payload).encode(), "application/json", dict(headers))


def _text(status: int, text: str, **headers: str) -> _Response:
    return _Response(status, text.encode(), "text/plain; charset=utf-8", dict(headers))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _mixpanel_error(status: int, error: str, **more: Any) -> _Response:
    return _json(status, {"code": status, "error": error, "status": _phrase(status), **more})


class _TooLarge(Exception):
    pass


def _inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """Undo a gzip or deflate Content-Encoding, refusing to inflate past `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        wbits_options = [31]
    elif encoding == "deflate":
        wbits_options = [15, -15]
    else:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    last_error: zlib.error | None = None
    for wbits in wbits_options:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            last_error = exc
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise _TooLarge
        return out
    raise ValueError(f"cannot decode {encoding} body: {last_error}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _basic_auth_username(header: str | None) -> str | None:
    """The username of an HTTP Basic header; Mixpanel also accepts `user:secret` unencoded."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    credentials = credentials.strip()
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = credentials
    username = decoded.partition(":")[0]
    return username or None


def _body_fields(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode("utf-8"), "body_base64": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode(), "body_base64": True}
