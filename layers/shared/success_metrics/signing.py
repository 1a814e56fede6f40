"""Standard Webhooks signatures (https://www.standardwebhooks.com/), on raw bytes.

signature = base64(HMAC-SHA256(key, f"{msg_id}.{timestamp}.".encode() + body)), sent as `v1,<b64>`;
the header may carry several space-separated signatures and any valid one passes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from success_metrics.errors import UnauthenticatedError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
TOLERANCE_SECONDS = 300
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
MAX_WEBHOOK_ID_LENGTH = 256
MAX_SIGNATURE_HEADER_LENGTH = 4096
# Bounds the work an attacker can make us do with a header full of candidates.
MAX_SIGNATURES = 10

# One message for a wrong signature and an unknown organization, so neither can be probed.
NO_MATCH = "no webhook-signature matches this body for this organization"
_WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def generate_secret(num_bytes: int = 32) -> str:
    """A new `whsec_` secret with `num_bytes` random bytes."""
    if not MIN_SECRET_BYTES <= num_bytes <= MAX_SECRET_BYTES:
        raise ValueError(f"secret size must be {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(num_bytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret; raises ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a webhook secret holds {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of `body` for `msg_id` at `timestamp`."""
    return "v1," + _digest(secret_key(secret), msg_id, timestamp, body)


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a producer sends."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    msg_id: str
    timestamp: int
    signatures: tuple[bytes, ...]


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Read and bound the three headers (names already lower-cased); 401 when unusable."""
    msg_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    raw_signatures = headers.get("webhook-signature", "")
    if not msg_id or not raw_timestamp or not raw_signatures:
        raise UnauthenticatedError(
            "webhook-id, webhook-timestamp and webhook-signature headers are required"
        )
    if not _WEBHOOK_ID.match(msg_id):
        raise UnauthenticatedError("webhook-id must be 1-256 printable ASCII characters")
    if not _TIMESTAMP.match(raw_timestamp):
        raise UnauthenticatedError("webhook-timestamp must be unix seconds")
    if len(raw_signatures) > MAX_SIGNATURE_HEADER_LENGTH:
        raise UnauthenticatedError("webhook-signature header is too long")
    signatures: list[bytes] = []
    for candidate in raw_signatures.split(" ")[:MAX_SIGNATURES]:
        version, _, value = candidate.partition(",")
        if version == "v1" and value:
            signatures.append(value.encode("ascii", errors="replace"))
    if not signatures:
        raise UnauthenticatedError("webhook-signature carries no v1 signature")
    return SignedHeaders(msg_id, int(raw_timestamp), tuple(signatures))


def verify(
    secrets_: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> SignedHeaders:
    """Check the signature of the raw `body` against every valid secret, in constant time.

    Raises UnauthenticatedError for a missing, malformed, stale or wrong signature. The message
    never says which secret or signature was closest.
    """
    signed = parse_headers(headers)
    check_timestamp(signed, now, tolerance)
    matched = False
    for secret in secrets_:
        expected = _digest(secret_key(secret), signed.msg_id, signed.timestamp, body).encode()
        for candidate in signed.signatures:
            # No early exit: every candidate is compared, so timing does not reveal which matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise UnauthenticatedError(NO_MATCH)
    return signed


def check_timestamp(signed: SignedHeaders, now: float, tolerance: int = TOLERANCE_SECONDS) -> None:
    if abs(now - signed.timestamp) > tolerance:
        raise UnauthenticatedError(
            f"webhook-timestamp is more than {tolerance} seconds away from the server's clock"
        )
