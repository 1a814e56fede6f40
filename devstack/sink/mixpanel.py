"""The Mixpanel Ingestion API and GDPR API v3 as the sink enforces them (limits and sources
in the package docstring)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from devstack.sink.common import _is_number

MIXPANEL_MAX_EVENTS = 2000


MIXPANEL_MAX_BYTES = 10 * 1024 * 1024


MIXPANEL_MAX_EVENT_BYTES = 1024 * 1024


MIXPANEL_MAX_PROPERTIES = 255  # "fewer than 255 properties"


MIXPANEL_MIN_TIME_S = 31_536_000  # 1971-01-01T00:00:00Z


MIXPANEL_MAX_FUTURE_S = 3600


MIXPANEL_MS_THRESHOLD = 100_000_000_000  # larger `time` values are milliseconds


MIXPANEL_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


MIXPANEL_PLACEHOLDER_IDS = frozenset(
    {"anon", "anonymous", "nil", "none", "null", "n/a", "00000000-0000-0000-0000-000000000000"}
)


MIXPANEL_GDPR_MAX_IDS = 2000


def _parse_mixpanel_body(body: bytes, content_type: str) -> list[Any]:
    text = body.decode()
    if "ndjson" in content_type.lower():
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def _mixpanel_time_error(value: Any, now: float) -> str | None:
    if value is None:
        return "'properties.time' is required"
    if not _is_number(value):
        return "'properties.time' is invalid: must be a number of seconds or milliseconds"
    seconds = value / 1000 if value > MIXPANEL_MS_THRESHOLD else value
    if seconds < MIXPANEL_MIN_TIME_S:
        return "'properties.time' is invalid: must be specified as seconds since epoch"
    if seconds > now + MIXPANEL_MAX_FUTURE_S:
        return "'properties.time' is invalid: must not be more than 1 hour in the future"
    return None


def _mixpanel_id_error(name: str, value: Any, *, insert_id: bool) -> str | None:
    field_name = f"'properties.{name}'"
    if value is None:
        return f"{field_name} is required"
    if insert_id:
        if not isinstance(value, str) or not MIXPANEL_INSERT_ID.fullmatch(value):
            return f"{field_name} is invalid: must be 1-36 letters, digits or '-'"
    elif not isinstance(value, str | int) or isinstance(value, bool):
        return f"{field_name} is invalid: must be a string"
    if str(value).strip().lower() in MIXPANEL_PLACEHOLDER_IDS:
        return f"{field_name} is invalid: {value!r} is a reserved placeholder value"
    return None


def mixpanel_record_error(record: Any, now: float | None = None) -> tuple[str, str] | None:
    """`(field, message)` for the first reason `/import?strict=1` rejects `record`, else None."""
    now = time.time() if now is None else now
    if not isinstance(record, dict):
        return "", "event must be a JSON object"
    if not isinstance(record.get("event"), str) or not record["event"]:
        return "event", "'event' is required and must be a non-empty string"
    properties = record.get("properties")
    if not isinstance(properties, dict):
        return "properties", "'properties' is required and must be an object"
    time_error = _mixpanel_time_error(properties.get("time"), now)
    if time_error:
        return "properties.time", time_error
    for name, is_insert_id in (("distinct_id", False), ("$insert_id", True)):
        id_error = _mixpanel_id_error(name, properties.get(name), insert_id=is_insert_id)
        if id_error:
            return f"properties.{name}", id_error
    if len(properties) >= MIXPANEL_MAX_PROPERTIES:
        return "properties", f"event must have fewer than {MIXPANEL_MAX_PROPERTIES} properties"
    if len(json.dumps(record).encode()) >= MIXPANEL_MAX_EVENT_BYTES:
        return "", "event must be smaller than 1MB of uncompressed JSON"
    return None


def _insert_id_of(record: Any) -> str:
    if isinstance(record, dict) and isinstance(record.get("properties"), dict):
        value = record["properties"].get("$insert_id")
        if isinstance(value, str):
            return value
    return ""
