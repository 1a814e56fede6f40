"""Secrets encrypted at rest with KMS, bound to their organization by the encryption context.

Decrypted values are cached in memory for a short time so a busy ingestion instance does not
call KMS on every request; they are never logged or returned by the API.
"""

from __future__ import annotations

import base64
import time
import zlib

from success_metrics import aws
from success_metrics.errors import ConfigurationError
from success_metrics.observability import current_function
from success_metrics.settings import get_settings

# Keyed by function too: a function must not read what another decrypted (see observability).
_cache: dict[tuple[str | None, str, str], tuple[float, str]] = {}


def encrypt(plaintext: str, org_id: str) -> str:
    key_id = get_settings().kms_key_id
    if not key_id:
        raise ConfigurationError("KMS_KEY_ID is not set")
    blob = aws.kms().encrypt(
        KeyId=key_id,
        Plaintext=plaintext.encode("utf-8"),
        EncryptionContext={"org_id": org_id},
    )["CiphertextBlob"]
    return base64.b64encode(blob).decode("ascii")


def decrypt(ciphertext: str, org_id: str) -> str:
    settings = get_settings()
    ttl = settings.config_cache_seconds
    key = (current_function(), org_id, ciphertext)
    cached = _cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    plaintext = (
        aws.kms()
        .decrypt(
            # Naming the key lets IAM judge the call against that key alone.
            KeyId=settings.kms_key_id,
            CiphertextBlob=base64.b64decode(ciphertext),
            EncryptionContext={"org_id": org_id},
        )["Plaintext"]
        .decode("utf-8")
    )
    if ttl > 0:
        _cache[key] = (time.monotonic() + ttl, plaintext)
    return plaintext


def clear_cache() -> None:
    _cache.clear()


# KMS encrypts at most 4,096 bytes at a time. Larger values (an erasure's collected ids, which
# grow with the subject's devices) are compressed and sealed in pieces of that size.
KMS_PLAINTEXT_LIMIT = 4096
_LARGE = "z1:"


def seal_large(plaintext: str, org_id: str) -> str:
    """Like `encrypt`, for values of any size (one KMS call per 4 KB once compressed)."""
    packed = base64.b64encode(zlib.compress(plaintext.encode("utf-8"), 9)).decode("ascii")
    pieces = [
        encrypt(packed[start : start + KMS_PLAINTEXT_LIMIT], org_id)
        for start in range(0, len(packed), KMS_PLAINTEXT_LIMIT)
    ]
    return _LARGE + ".".join(pieces)


def open_large(sealed: str, org_id: str) -> str:
    """The value `seal_large` sealed (or `encrypt`, for values sealed before it existed)."""
    if not sealed.startswith(_LARGE):
        return decrypt(sealed, org_id)
    packed = "".join(decrypt(piece, org_id) for piece in sealed[len(_LARGE) :].split("."))
    return zlib.decompress(base64.b64decode(packed)).decode("utf-8")
