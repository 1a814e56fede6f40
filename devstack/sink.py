"""The local stack's destination sink: one HTTP server standing in for every outbound destination.

It fakes, on one port, the four kinds of endpoint the delivery functions call:

- **Mixpanel Ingestion API** (`POST /import`, and `/track`; the EU/IN hosts use the same paths):
  HTTP Basic auth (any non-empty username: service account, project token or secret), gzip
  `Content-Encoding`, JSON array or `application/x-ndjson`; at most 2000 events and 10 MB
  (10 * 1024 * 1024 bytes) of uncompressed JSON per request, else 413 with Mixpanel's JSON error;
  with `strict=1` each event must have `event`, `properties.time` (seconds or milliseconds, not
  before 1971-01-01, not more than one hour in the future), `properties.distinct_id` (the empty
  string is allowed; placeholders such as "null" or "anon" are not) and `properties.$insert_id`
  (at most 36 characters, letters, digits and "-"), be under 1 MB and have fewer than 255
  properties; failures answer 400 with `failed_records` while the valid events still count as
  imported. 401 `{"code": 401, "error": "Invalid credentials", ...}` without credentials.
  Sources: https://docs.mixpanel.com/reference/import-events (2000 events, 10 MB: the older
  https://developer.mixpanel.com/reference/import-events said 2 MB; the size is an attribute),
  https://docs.mixpanel.com/troubleshooting/errors/400-bad-request,
  https://docs.mixpanel.com/troubleshooting/errors/401-unauthorized,
  https://docs.mixpanel.com/troubleshooting/errors/413-payload-too-large,
  https://docs.mixpanel.com/troubleshooting/errors/429-rate-limit-exceeded,
  https://docs.mixpanel.com/reference/track-event (1 MB per event, fewer than 255 properties).
- **GA4 Measurement Protocol** (`POST /mp/collect`): always 204, even for a malformed payload,
  as the real one "does not return HTTP error codes"; `POST /debug/mp/collect` answers 200 with
  `{"validationMessages": [{"fieldPath", "description", "validationCode"}]}` from a validator
  enforcing: body smaller than 130 kB; `client_id` (or `app_instance_id`) required; `user_id` at
  most 256 characters; at most 25 events; event and parameter names at most 40 characters,
  starting with a letter, letters/digits/underscores only, no reserved names or prefixes
  (`firebase_`, `google_`, `ga_`); at most 25 parameters per event; parameter values at most 100
  characters (page_title 300, page_referrer 420, page_location 1000); items at most 10 custom
  parameters; at most 25 user properties, names at most 24 and values at most 36 characters;
  `timestamp_micros` no more than 72 hours old. The validation server does not check the
  `api_secret` value; this fake only checks that it and `measurement_id` are present.
  Sources: https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events
  (Limitations), .../protocol/ga4/validating-events, .../protocol/ga4/reference,
  https://support.google.com/analytics/answer/13316687 (reserved names),
  https://firebase.google.com/docs/reference/android/com/google/firebase/analytics/FirebaseAnalytics.Event
  (reserved event names), https://support.google.com/analytics/answer/9267744 (collection limits).
- **Slack incoming webhooks** (`POST /services/T.../B.../...`): 200 `ok`; 400 `invalid_payload`
  for a body that is not a JSON object, `no_text` without `text`, `blocks` or `attachments`,
  `invalid_blocks` for more than 50 blocks or a malformed block; one message per second per
  webhook, a faster one gets 429 `rate_limited` with `Retry-After: 1`.
  Sources: https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks,
  https://api.slack.com/docs/rate-limits, https://docs.slack.dev/reference/block-kit/blocks.
- **Mixpanel GDPR API v3** (`POST /api/app/data-deletions/v3.0/?token=<project token>`): a
  `Authorization: Bearer <GDPR OAuth token>` header, else 401; the `token` query parameter, a JSON
  body with `distinct_ids` (1 to 2000 strings) and `compliance_type` `GDPR` or `CCPA` (default
  GDPR), else 400 `{"status": "error", "error": ...}`; 200 `{"status": "ok", "results":
  {"task_id": ...}}`. Source: https://docs.mixpanel.com/reference/gdpr-api (create deletion).
- **Google OAuth 2.0 token endpoint** (`POST /token`, form-encoded): `grant_type=refresh_token`
  with `client_id`, `client_secret` and `refresh_token`, else 400 `{"error": "invalid_request"}`
  (`unsupported_grant_type` for another grant); 200 with a Bearer `access_token` that the User
  Deletion fake accepts. Source: https://developers.google.com/identity/protocols/oauth2/web-server
  (refreshing an access token).
- **Google Analytics User Deletion API** (`POST /analytics/v3/userDeletion/userDeletionRequests:
  upsert`): a Bearer token this sink issued, else 401 `UNAUTHENTICATED`; a body with `id.type`
  (`CLIENT_ID`, `USER_ID` or `APP_INSTANCE_ID`), a non-empty `id.userId` and exactly one of
  `propertyId`, `webPropertyId`, `firebaseProjectId`, else 400 `INVALID_ARGUMENT`; 200 echoes the
  request with `deletionRequestTime`. Source:
  https://developers.google.com/analytics/devguides/config/userdeletion/v3/reference
- **Customer webhook endpoints** (any other path): 200 `{"received": true}`.

Every request is recorded (bounded, oldest dropped) and can be read back in-process
(`Sink.requests()`) or over HTTP on the same port (`GET /_sink/requests`). Faults (an error
status, a delay, or a dropped connection; for every matching request, a seeded fraction of them,
or the next N) are set with `Sink.set_fault()` or `PUT /_sink/fault`. Run it standalone with
`python -m devstack.sink --port 3001`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import logging
import random
import re
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

# --- limits -------------------------------------------------------------------------------------

MAX_RECORDED = 100_000
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # hard cap on what the sink reads or inflates at all

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

GA4_MAX_BODY_BYTES = 130_000
GA4_MAX_EVENTS = 25
GA4_MAX_PARAMS = 25
GA4_MAX_NAME = 40
GA4_MAX_PARAM_VALUE = 100
GA4_LONG_PARAM_VALUES = {"page_title": 300, "page_referrer": 420, "page_location": 1000}
GA4_MAX_ITEM_CUSTOM_PARAMS = 10
GA4_MAX_USER_PROPERTIES = 25
GA4_MAX_USER_PROPERTY_NAME = 24
GA4_MAX_USER_PROPERTY_VALUE = 36
GA4_MAX_USER_ID = 256
GA4_MAX_BACKDATE_S = 72 * 3600
GA4_FUTURE_ALLOWANCE_S = 60  # clock skew tolerated before a timestamp counts as "in the future"
GA4_RESERVED_PREFIXES = ("firebase_", "google_", "ga_")
GA4_RESERVED_PARAM_PREFIXES = ("_", "firebase_", "google_", "ga_", "gtag.")
GA4_RESERVED_EVENT_NAMES = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_impression",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_remove",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "session_start",
        "session_start_with_rollout",
        "user_engagement",
    }
)
GA4_RESERVED_USER_PROPERTIES = frozenset(
    {
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
        "first_open_after_install",
    }
)
GA4_STANDARD_ITEM_PARAMS = frozenset(
    {
        "item_id",
        "item_name",
        "affiliation",
        "coupon",
        "currency",
        "creative_name",
        "creative_slot",
        "discount",
        "index",
        "item_brand",
        "item_category",
        "item_category2",
        "item_category3",
        "item_category4",
        "item_category5",
        "item_list_id",
        "item_list_name",
        "item_variant",
        "location_id",
        "price",
        "promotion_id",
        "promotion_name",
        "quantity",
    }
)

SLACK_MIN_INTERVAL_S = 1.0
SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION_TEXT = 3000

PLATFORMS = ("mixpanel", "ga4", "ga4_debug", "slack", "webhook")

# --- faults -------------------------------------------------------------------------------------


@dataclass
class Fault:
    """What to do to requests whose path starts with `path_prefix` (all requests if None).

    Each matching request is hit with probability `rate` (drawn from a `random.Random(seed)`), and
    only the next `count` hits happen if `count` is set. A hit waits `latency_ms`, then: with
    `timeout`, closes the connection without answering; else answers `status` in the
    platform's error shape (429 and 503 carry `Retry-After: retry_after`, default 1); with
    `status` None, the request is only delayed and then answered normally.
    """

    status: int | None = 500
    rate: float = 1.0
    latency_ms: int = 0
    path_prefix: str | None = None
    retry_after: int | None = None
    count: int | None = None
    timeout: bool = False
    seed: int | None = None
    # A mix: each hit picks one of these at random instead of `status`/`timeout`
    # (an HTTP status, or "timeout"), e.g. (500, 429, "timeout").
    choices: tuple[int | str, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is not None:
            self.choices = tuple(self.choices)
            for choice in self.choices:
                if choice != "timeout" and not (isinstance(choice, int) and 100 <= choice <= 599):
                    raise ValueError(f"choices are HTTP statuses or 'timeout', not {choice!r}")
        if self.status is not None and not (
            isinstance(self.status, int) and 100 <= self.status <= 599
        ):
            raise ValueError(f"status must be an HTTP status code or null, not {self.status!r}")
        if not isinstance(self.rate, int | float) or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate!r}")
        if not isinstance(self.latency_ms, int | float) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, not {self.latency_ms!r}")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 0):
            raise ValueError(f"count must be a non-negative integer or null, not {self.count!r}")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError(
                f"retry_after must be a non-negative integer, not {self.retry_after!r}"
            )
        if self.path_prefix is not None and not isinstance(self.path_prefix, str):
            raise ValueError("path_prefix must be a string or null")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the control API's JSON; `{"latency_ms": n}` alone means delay, not fail."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        values = dict(data)
        if "status" not in values and values.get("latency_ms") and not values.get("timeout"):
            values["status"] = None
        return cls(**values)

    def retry_after_header(self) -> str | None:
        if self.retry_after is not None:
            return str(self.retry_after)
        if self.status in (429, 503):
            return "1"
        return None


class _FaultState:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.count
        self.rng = random.Random(fault.seed)  # noqa: S311 - reproducible fault injection, not crypto

    def hit(self, path: str) -> bool:
        """Whether this request is hit; the caller holds the sink's lock."""
        prefix = self.fault.path_prefix
        if prefix is not None and not path.startswith(prefix):
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rng.random() >= self.fault.rate:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.fault), "remaining": self.remaining}


# --- responses ----------------------------------------------------------------------------------


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


def _fault_response(fault: Fault, platform: str) -> _Response:
    status = fault.status if fault.status is not None else 500
    headers: dict[str, str] = {}
    retry_after = fault.retry_after_header()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if platform == "mixpanel":
        error = (
            "Project exceeded rate limits. Please retry the request with exponential backoff."
            if status == 429
            else "sink fault injection"
        )
        response = _mixpanel_error(status, error)
    elif platform == "slack":
        slack_error = {429: "rate_limited", 500: "rollup_error"}.get(status)
        response = _text(status, slack_error or _phrase(status).lower().replace(" ", "_"))
    elif platform in ("ga4", "ga4_debug"):
        response = _Response(status, b"", "text/plain")
    else:
        response = _json(status, {"error": _phrase(status), "fault": True})
    response.headers.update(headers)
    return response


# --- decoding -----------------------------------------------------------------------------------


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


MIXPANEL_GDPR_MAX_IDS = 2000
GOOGLE_DELETION_PATH = "/analytics/v3/userDeletion/userDeletionRequests:upsert"
GOOGLE_ID_TYPES = frozenset({"CLIENT_ID", "USER_ID", "APP_INSTANCE_ID"})


def _route(path: str) -> str:
    if path in ("/import", "/track"):
        return "mixpanel"
    if path.rstrip("/") == "/api/app/data-deletions/v3.0":
        return "mixpanel_gdpr"
    if path == "/token":
        return "google_oauth"
    if path == GOOGLE_DELETION_PATH:
        return "ga4_user_deletion"
    if path == "/mp/collect":
        return "ga4"
    if path == "/debug/mp/collect":
        return "ga4_debug"
    if path.startswith("/services/"):
        return "slack"
    return "webhook"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Mixpanel -----------------------------------------------------------------------------------


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


# --- GA4 ----------------------------------------------------------------------------------------

_Messages = list[dict[str, str]]


def _msg(out: _Messages, path: str, description: str, code: str) -> None:
    out.append({"fieldPath": path, "description": description, "validationCode": code})


def _ga4_name_problem(
    name: str, max_len: int, prefixes: tuple[str, ...], reserved: frozenset[str] = frozenset()
) -> tuple[str, str] | None:
    """`(validationCode, reason)` if `name` is not a valid GA4 event/parameter/property name."""
    if name in reserved or name.startswith(prefixes):
        return "NAME_RESERVED", "is reserved"
    if len(name) > max_len:
        return "NAME_INVALID", f"is longer than {max_len} characters"
    if not name or not name[0].isalpha():
        return "NAME_INVALID", "must start with an alphabetic character"
    if not all(ch.isalnum() or ch == "_" for ch in name):
        return "NAME_INVALID", "may only contain alpha-numeric characters and underscores"
    return None


def _ga4_check_timestamp(out: _Messages, path: str, value: Any, now: float) -> None:
    if value is None:
        return
    if not _is_number(value):
        _msg(out, path, f"{path} must be a number of microseconds", "VALUE_INVALID")
        return
    seconds = value / 1_000_000
    if seconds < now - GA4_MAX_BACKDATE_S:
        _msg(
            out,
            path,
            f"{path} [{value}] is more than 72 hours in the past (is it in microseconds?)",
            "VALUE_INVALID",
        )
    elif seconds > now + GA4_FUTURE_ALLOWANCE_S:
        _msg(out, path, f"{path} [{value}] is in the future", "VALUE_INVALID")


def _ga4_check_value(out: _Messages, path: str, label: str, name: str, value: Any) -> None:
    limit = GA4_LONG_PARAM_VALUES.get(name, GA4_MAX_PARAM_VALUE)
    if isinstance(value, str) and len(value) > limit:
        _msg(
            out,
            path,
            f"{label} has value of length {len(value)}, more than {limit} characters",
            "VALUE_INVALID",
        )


def _ga4_check_items(out: _Messages, index: int, items: Any) -> None:
    if not isinstance(items, list):
        _msg(
            out,
            "events.params.items",
            f"Event at index: [{index}] items must be an array",
            "VALUE_INVALID",
        )
        return
    for item_index, item in enumerate(items):
        where = f"Event at index: [{index}] item at index: [{item_index}]"
        if not isinstance(item, dict):
            _msg(out, "events.params.items", f"{where} must be an object", "VALUE_INVALID")
            continue
        custom = [key for key in item if key not in GA4_STANDARD_ITEM_PARAMS]
        if len(custom) > GA4_MAX_ITEM_CUSTOM_PARAMS:
            _msg(
                out,
                "events.params.items",
                f"{where} has {len(custom)} custom parameters, more than "
                f"{GA4_MAX_ITEM_CUSTOM_PARAMS}",
                "EXCEEDED_MAX_ENTITIES",
            )
        for key, value in item.items():
            problem = _ga4_name_problem(key, GA4_MAX_NAME, GA4_RESERVED_PARAM_PREFIXES)
            if problem:
                _msg(
                    out,
                    "events.params.items",
                    f"{where} has parameter [{key}] that {problem[1]}",
                    problem[0],
                )
            _ga4_check_value(out, "events.params.items", f"{where} parameter [{key}]", key, value)


def _ga4_check_params(out: _Messages, index: int, params: Any) -> None:
    if params is None:
        return
    if not isinstance(params, dict):
        _msg(
            out,
            "events.params",
            f"Event at index: [{index}] params must be an object",
            "VALUE_INVALID",
        )
        return
    if len(params) > GA4_MAX_PARAMS:
        _msg(
            out,
            "events.params",
            f"Event at index: [{index}] has {len(params)} parameters, more than {GA4_MAX_PARAMS}",
            "EXCEEDED_MAX_ENTITIES",
        )
    for name, value in params.items():
        if name == "items":
            _ga4_check_items(out, index, value)
            continue
        problem = _ga4_name_problem(name, GA4_MAX_NAME, GA4_RESERVED_PARAM_PREFIXES)
        if problem:
            _msg(
                out,
                "events.params",
                f"Event at index: [{index}] has parameter name [{name}] that {problem[1]}",
                problem[0],
            )
        label = f"Event at index: [{index}] parameter [{name}]"
        _ga4_check_value(out, "events.params", label, name, value)


def _ga4_check_events(out: _Messages, events: Any, now: float) -> None:
    if not isinstance(events, list) or not events:
        _msg(out, "events", "events is required and must be a non-empty array", "VALUE_REQUIRED")
        return
    if len(events) > GA4_MAX_EVENTS:
        _msg(
            out,
            "events",
            f"Request has {len(events)} events, more than {GA4_MAX_EVENTS}",
            "EXCEEDED_MAX_ENTITIES",
        )
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            _msg(out, "events", f"Event at index: [{index}] must be an object", "VALUE_INVALID")
            continue
        name = event.get("name")
        if not isinstance(name, str) or not name:
            _msg(out, "events", f"Event at index: [{index}] has no name", "VALUE_REQUIRED")
        else:
            problem = _ga4_name_problem(
                name, GA4_MAX_NAME, GA4_RESERVED_PREFIXES, GA4_RESERVED_EVENT_NAMES
            )
            if problem:
                _msg(
                    out,
                    "events",
                    f"Event at index: [{index}] has invalid name [{name}]: it {problem[1]}",
                    problem[0],
                )
        _ga4_check_params(out, index, event.get("params"))
        _ga4_check_timestamp(out, "events.timestamp_micros", event.get("timestamp_micros"), now)


def _ga4_check_user_properties(out: _Messages, properties: Any, now: float) -> None:
    if properties is None:
        return
    if not isinstance(properties, dict):
        _msg(out, "user_properties", "user_properties must be an object", "VALUE_INVALID")
        return
    if len(properties) > GA4_MAX_USER_PROPERTIES:
        _msg(
            out,
            "user_properties",
            f"Request has {len(properties)} user properties, more than {GA4_MAX_USER_PROPERTIES}",
            "EXCEEDED_MAX_ENTITIES",
        )
    for name, wrapper in properties.items():
        problem = _ga4_name_problem(
            name,
            GA4_MAX_USER_PROPERTY_NAME,
            GA4_RESERVED_PARAM_PREFIXES,
            GA4_RESERVED_USER_PROPERTIES,
        )
        if problem:
            _msg(out, "user_properties", f"User property name [{name}] {problem[1]}", problem[0])
        if not isinstance(wrapper, dict) or "value" not in wrapper:
            _msg(
                out,
                "user_properties",
                f'User property [{name}] must be {{"value": ...}}',
                "VALUE_INVALID",
            )
            continue
        value = wrapper["value"]
        if isinstance(value, str) and len(value) > GA4_MAX_USER_PROPERTY_VALUE:
            _msg(
                out,
                "user_properties",
                f"User property [{name}] value is longer than {GA4_MAX_USER_PROPERTY_VALUE} "
                "characters",
                "VALUE_INVALID",
            )
        _ga4_check_timestamp(
            out, "user_properties.timestamp_micros", wrapper.get("timestamp_micros"), now
        )


def ga4_validation_messages(
    body: bytes, query: Mapping[str, str] | None = None, now: float | None = None
) -> _Messages:
    """What `/debug/mp/collect` would say about `body` sent with `query`; [] when valid."""
    now = time.time() if now is None else now
    query = query or {}
    out: _Messages = []
    if len(body) >= GA4_MAX_BODY_BYTES:
        _msg(out, "", f"Post body of {len(body)} bytes is not smaller than 130kB", "VALUE_INVALID")
    app_stream = bool(query.get("firebase_app_id"))
    if not app_stream and not query.get("measurement_id"):
        _msg(
            out,
            "measurement_id",
            "Unable to find non-empty parameter [measurement_id] value in request URL",
            "VALUE_REQUIRED",
        )
    if not query.get("api_secret"):
        _msg(
            out,
            "api_secret",
            "Unable to find non-empty parameter [api_secret] value in request URL",
            "VALUE_REQUIRED",
        )
    try:
        payload = json.loads(body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _msg(out, "", f"Unable to parse the JSON payload: {exc}", "VALUE_INVALID")
        return out
    if not isinstance(payload, dict):
        _msg(out, "", "The payload must be a JSON object", "VALUE_INVALID")
        return out
    id_field = "app_instance_id" if app_stream else "client_id"
    if not isinstance(payload.get(id_field), str) or not payload[id_field]:
        _msg(
            out,
            id_field,
            f"{id_field} is required and must be a non-empty string",
            "VALUE_REQUIRED",
        )
    user_id = payload.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or len(user_id) > GA4_MAX_USER_ID):
        _msg(
            out,
            "user_id",
            f"user_id must be a string of at most {GA4_MAX_USER_ID} characters",
            "VALUE_INVALID",
        )
    _ga4_check_timestamp(out, "timestamp_micros", payload.get("timestamp_micros"), now)
    _ga4_check_user_properties(out, payload.get("user_properties"), now)
    _ga4_check_events(out, payload.get("events"), now)
    return out


# --- Slack --------------------------------------------------------------------------------------


def slack_payload_error(body: bytes, content_type: str) -> str | None:
    """Slack's error string for an incoming-webhook body, or None when Slack would post it."""
    try:
        text = body.decode()
        if "application/x-www-form-urlencoded" in content_type.lower():
            text = dict(parse_qsl(text)).get("payload", text)  # `payload=...`, or a raw JSON body
        payload = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "invalid_payload"
    if not isinstance(payload, dict):
        return "invalid_payload"
    blocks = payload.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list):
            return "invalid_blocks_format"
        if len(blocks) > SLACK_MAX_BLOCKS:
            return "invalid_blocks"
        for block in blocks:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                return "invalid_blocks"
            block_text = block.get("text")
            if isinstance(block_text, dict) and len(str(block_text.get("text", ""))) > (
                SLACK_MAX_SECTION_TEXT
            ):
                return "invalid_blocks"
    has_text = isinstance(payload.get("text"), str) and payload["text"].strip() != ""
    if not (has_text or blocks or payload.get("attachments")):
        return "no_text"
    return None


# --- the server ---------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: Sink


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer: headers and body sent apart meet the peer's delayed ACK (40 ms).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sink._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sink: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes | None:
        """The raw request body, or None when it is over MAX_REQUEST_BYTES."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        sink = self.server.sink
        split = urlsplit(self.path)
        path = split.path or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raw = self._read_body()
        if raw is None:
            self.close_connection = True
            self._send(_text(413, "request body too large for the sink"))
            return
        if path == "/_sink" or path.startswith("/_sink/"):
            self._send(sink._control(self.command, path, query, raw))
            return
        platform = _route(path)
        try:
            body = _inflate(raw, headers.get("content-encoding", ""), MAX_REQUEST_BYTES)
            decode_error: str | None = None
        except _TooLarge:
            body, decode_error = raw, "too_large"
        except ValueError as exc:
            body, decode_error = raw, str(exc)
        record = {
            "method": self.command,
            "path": path,
            "query": query,
            "headers": headers,
            "platform": platform,
            **_body_fields(body),
        }
        if decode_error:
            record["decode_error"] = decode_error
        fault = sink._fault_hit(path)
        if fault is not None:
            if fault.latency_ms:
                sink._sleep(fault.latency_ms / 1000)
            if fault.timeout:
                sink._record({**record, "status": None, "fault": True})
                self.close_connection = True
                return
            if fault.status is not None:
                response = _fault_response(fault, platform)
                sink._record(
                    {
                        **record,
                        "status": response.status,
                        "fault": True,
                        "response": response.body.decode(errors="replace"),
                    }
                )
                self._send(response)
                return
        if decode_error:
            response = _decode_error_response(platform, decode_error)
        else:
            response = sink._dispatch(platform, self.command, path, query, headers, body)
        sink._record(
            {
                **record,
                **response.extra,
                "status": response.status,
                "fault": False,
                "response": response.body.decode(errors="replace"),
            }
        )
        self._send(response)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.status != 204 and response.body:
            self.wfile.write(response.body)


def _body_fields(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode("utf-8"), "body_base64": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode(), "body_base64": True}


def _decode_error_response(platform: str, error: str) -> _Response:
    too_large = error == "too_large"
    if platform == "mixpanel":
        if too_large:
            return _mixpanel_error(413, f"request exceeds max limit of {MIXPANEL_MAX_BYTES} bytes")
        return _mixpanel_error(400, f"unable to decode request body: {error}")
    if platform == "slack":
        return _text(400, "invalid_payload")
    if platform == "ga4":
        return _Response(204)
    if platform == "ga4_debug":
        out: _Messages = []
        _msg(out, "", f"Unable to decode the request body: {error}", "VALUE_INVALID")
        return _json(200, {"validationMessages": out})
    return _json(413 if too_large else 400, {"error": error})


class Sink:
    """The destination sink: start() it, point the destinations at `url`, read `requests()`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, max_recorded: int = MAX_RECORDED
    ) -> None:
        self.host = host
        self.port = port
        # Tunable limits (defaults are the platforms' documented ones).
        self.mixpanel_max_events = MIXPANEL_MAX_EVENTS
        self.mixpanel_max_bytes = MIXPANEL_MAX_BYTES
        self.slack_min_interval_s: float | None = SLACK_MIN_INTERVAL_S
        self._lock = threading.Lock()
        self._records: deque[dict[str, Any]] = deque(maxlen=max_recorded)
        self._next_id = 1
        self._fault: _FaultState | None = None
        self._insert_ids: dict[tuple[str, str], int] = {}
        self._slack_last: dict[str, float] = {}
        self._google_tokens: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sink is not started")
        host, port = self._server.server_address[:2]
        host = host if isinstance(host, str) else host.decode()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self._server is not None:
            return
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.sink = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sink", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=1)
        self._server = self._thread = None

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # recorded requests

    def requests(
        self, path_prefix: str | None = None, platform: str | None = None
    ) -> list[dict[str, Any]]:
        """Copies of the recorded requests, oldest first, optionally filtered."""
        with self._lock:
            records = list(self._records)
        return [
            dict(r)
            for r in records
            if (path_prefix is None or r["path"].startswith(path_prefix))
            and (platform is None or r["platform"] == platform)
        ]

    def clear(self) -> None:
        """Forget recorded requests, Mixpanel insert ids and Slack rate-limit state."""
        with self._lock:
            self._records.clear()
            self._insert_ids.clear()
            self._slack_last.clear()

    def mixpanel_insert_ids(self, project: str | None = None) -> dict[str, int]:
        """$insert_id -> times an event with it was imported (all projects, or one project).

        Mixpanel deduplicates on ($insert_id, distinct_id, event, time) at query time, so a count
        above one is a retry the real service would have collapsed.
        """
        counts: dict[str, int] = {}
        with self._lock:
            for (proj, insert_id), n in self._insert_ids.items():
                if project is None or proj == project:
                    counts[insert_id] = counts.get(insert_id, 0) + n
        return counts

    # faults

    def set_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self._fault = _FaultState(fault) if fault is not None else None

    def fault(self) -> dict[str, Any] | None:
        with self._lock:
            return self._fault.describe() if self._fault else None

    # internals used by the handler

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _fault_hit(self, path: str) -> Fault | None:
        with self._lock:
            if self._fault is not None and self._fault.hit(path):
                fault = self._fault.fault
                if fault.choices:
                    choice = self._fault.rng.choice(fault.choices)
                    timeout = choice == "timeout"
                    return replace(fault, status=None if timeout else int(choice), timeout=timeout)
                return fault
        return None

    def _record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append({"id": self._next_id, "time": time.time(), **record})
            self._next_id += 1

    def _dispatch(
        self,
        platform: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Response:
        if platform == "webhook":
            return _json(200, {"received": True})
        if method != "POST":
            return _Response(405, b"", "text/plain", {"Allow": "POST"})
        handlers: dict[str, Callable[[str, dict[str, str], dict[str, str], bytes], _Response]] = {
            "mixpanel": self._mixpanel,
            "ga4": self._ga4,
            "ga4_debug": self._ga4,
            "slack": self._slack,
            "mixpanel_gdpr": self._mixpanel_gdpr,
            "google_oauth": self._google_oauth,
            "ga4_user_deletion": self._ga4_user_deletion,
        }
        return handlers[platform](path, query, headers, body)

    def _mixpanel(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        if path == "/track":
            return self._mixpanel_track(query, headers, body)
        username = _basic_auth_username(headers.get("authorization"))
        if username is None:
            return _mixpanel_error(401, "Invalid credentials")
        if len(body) > self.mixpanel_max_bytes:
            return _mixpanel_error(
                413, f"request exceeds max limit of {self.mixpanel_max_bytes} bytes"
            )
        try:
            records = _parse_mixpanel_body(body, headers.get("content-type", ""))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _mixpanel_error(400, f"unable to parse request body as JSON: {exc}")
        if len(records) > self.mixpanel_max_events:
            return _mixpanel_error(
                413, f"request exceeds max limit of {self.mixpanel_max_events} events"
            )
        project = query.get("project_id") or username
        failed: list[dict[str, Any]] = []
        imported: list[Any] = []
        now = time.time()
        for index, record in enumerate(records):
            error = mixpanel_record_error(record, now) if query.get("strict") == "1" else None
            if error is None:
                imported.append(record)
            else:
                failed.append(
                    {
                        "index": index,
                        "insert_id": _insert_id_of(record),
                        "field": error[0],
                        "message": error[1],
                    }
                )
        self._count_insert_ids(project, imported)
        extra = {"project": project, "num_records_imported": len(imported)}
        if failed:
            response = _mixpanel_error(
                400,
                "some data points in the request failed validation",
                num_records_imported=len(imported),
                failed_records=failed,
            )
        else:
            response = _json(200, {"code": 200, "num_records_imported": len(imported), "status": 1})
        response.extra = extra
        return response

    def _mixpanel_track(
        self, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        verbose = query.get("verbose") == "1"
        try:
            text = body.decode()
            if "application/x-www-form-urlencoded" in headers.get("content-type", "").lower():
                text = dict(parse_qsl(text)).get("data", "")
                if not text.lstrip().startswith(("[", "{")):
                    text = base64.b64decode(text).decode()
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            if verbose:
                return _json(200, {"status": 0, "error": f"unable to parse data: {exc}"})
            return _text(200, "0")
        records = data if isinstance(data, list) else [data]
        token = ""
        if records and isinstance(records[0], dict):
            token = str((records[0].get("properties") or {}).get("token", ""))
        self._count_insert_ids(token, records)
        if verbose:
            return _json(200, {"status": 1, "error": None})
        return _text(200, "1")

    def _count_insert_ids(self, project: str, records: list[Any]) -> None:
        with self._lock:
            for record in records:
                insert_id = _insert_id_of(record)
                if insert_id:
                    key = (project, insert_id)
                    self._insert_ids[key] = self._insert_ids.get(key, 0) + 1

    def _ga4(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        messages = ga4_validation_messages(body, query)
        if path == "/mp/collect":
            return _Response(204, extra={"validation": messages})
        response = _json(200, {"validationMessages": messages})
        response.extra = {"validation": messages}
        return response

    def _mixpanel_gdpr(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        def error(status: int, message: str) -> _Response:
            return _json(status, {"status": "error", "error": message})

        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return error(401, "a GDPR OAuth token is required (Authorization: Bearer ...)")
        if not query.get("token"):
            return error(400, "the token query parameter (project token) is required")
        try:
            payload = json.loads(body)
        except ValueError:
            return error(400, "the body must be JSON")
        ids = payload.get("distinct_ids") if isinstance(payload, dict) else None
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MIXPANEL_GDPR_MAX_IDS
            or not all(isinstance(i, str) and i for i in ids)
        ):
            return error(400, f"distinct_ids must be 1 to {MIXPANEL_GDPR_MAX_IDS} strings")
        if payload.get("compliance_type", "GDPR") not in ("GDPR", "CCPA"):
            return error(400, "compliance_type must be GDPR or CCPA")
        task = f"{random.getrandbits(64):016x}"
        response = _json(200, {"status": "ok", "results": {"task_id": task}})
        response.extra = {"deletion": {"distinct_ids": ids, "task_id": task}}
        return response

    def _google_oauth(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        missing = [n for n in ("client_id", "client_secret", "refresh_token") if not form.get(n)]
        if missing:
            return _json(
                400, {"error": "invalid_request", "error_description": f"missing {missing[0]}"}
            )
        token = f"ya29.sink-{random.getrandbits(64):016x}"
        with self._lock:
            self._google_tokens.add(token)
        return _json(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/analytics.user.deletion",
            },
        )

    def _ga4_user_deletion(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        def error(status: int, message: str, state: str) -> _Response:
            return _json(status, {"error": {"code": status, "message": message, "status": state}})

        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            known = token in self._google_tokens
        if not known:
            return error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
        try:
            payload = json.loads(body)
        except ValueError:
            return error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        ident = payload.get("id") if isinstance(payload, dict) else None
        targets = (
            [n for n in ("propertyId", "webPropertyId", "firebaseProjectId") if payload.get(n)]
            if isinstance(payload, dict)
            else []
        )
        if (
            not isinstance(ident, dict)
            or ident.get("type") not in GOOGLE_ID_TYPES
            or not isinstance(ident.get("userId"), str)
            or not ident["userId"]
            or len(targets) != 1
        ):
            return error(
                400,
                "id.type, id.userId and exactly one of propertyId, webPropertyId or "
                "firebaseProjectId are required",
                "INVALID_ARGUMENT",
            )
        moment = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        return _json(200, {**payload, "deletionRequestTime": moment})

    def _slack(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        if len([part for part in path.split("/")[2:] if part]) < 3:
            return _text(404, "no_service")
        error = slack_payload_error(body, headers.get("content-type", ""))
        if error is not None:
            return _text(400, error)
        interval = self.slack_min_interval_s
        now = time.monotonic()
        with self._lock:
            last = self._slack_last.get(path)
            if interval and last is not None and now - last < interval:
                return _text(429, "rate_limited", **{"Retry-After": str(max(1, round(interval)))})
            self._slack_last[path] = now
        return _text(200, "ok")

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> _Response:
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_sink/requests"):
            records = self.requests(query.get("path"), query.get("platform"))
            return _json(200, {"requests": records})
        if route == ("DELETE", "/_sink/requests"):
            self.clear()
            return _Response(204)
        if route == ("GET", "/_sink/fault"):
            return _json(200, {"fault": self.fault()})
        if route == ("DELETE", "/_sink/fault"):
            self.set_fault(None)
            return _Response(204)
        if route in (("PUT", "/_sink/fault"), ("POST", "/_sink/fault")):
            try:
                data = json.loads(raw.decode() or "{}")
                if not isinstance(data, dict):
                    raise ValueError("the fault must be a JSON object")
                fault = Fault.from_dict(data)
            except (ValueError, TypeError) as exc:
                return _json(400, {"error": str(exc)})
            self.set_fault(fault)
            return _json(200, {"fault": self.fault()})
        if route == ("GET", "/_sink/mixpanel/insert-ids"):
            return _json(200, {"insert_ids": self.mixpanel_insert_ids(query.get("project"))})
        if route == ("GET", "/_sink/health"):
            return _json(200, {"ok": True})
        return _json(404, {"error": f"no control endpoint {method} {path}"})


def _iter_lines(sink: Sink) -> Iterator[str]:
    yield f"destination sink listening on {sink.url}"
    yield "  Mixpanel /import /track, GA4 /mp/collect /debug/mp/collect, Slack /services/..."
    yield "  control: GET|DELETE /_sink/requests, GET|PUT|DELETE /_sink/fault"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.sink", description="The local stack's destination sink."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args(argv)
    sink = Sink(args.host, args.port)
    sink.start()
    for line in _iter_lines(sink):
        print(line, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
