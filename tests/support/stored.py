"""Stored items as text a search can look inside."""

from __future__ import annotations

import contextlib
import gzip
import json
from typing import Any


def readable(value: Any) -> Any:
    """An item with its binary attributes as the text they hold (gzipped, like a dead letter's
    kept message, or not), so a search for a user's identifiers sees inside them."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        with contextlib.suppress(OSError, EOFError):
            raw = gzip.decompress(raw)
        return raw.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


def item_text(item: dict[str, Any]) -> str:
    return json.dumps(readable(item))
