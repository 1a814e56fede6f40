"""The GA4 Measurement Protocol validation server and the User Deletion API as the sink
enforces them (limits and sources in the package docstring)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from devstack.sink.common import _is_number

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


GOOGLE_DELETION_PATH = "/analytics/v3/userDeletion/userDeletionRequests:upsert"


GOOGLE_ID_TYPES = frozenset({"CLIENT_ID", "USER_ID", "APP_INSTANCE_ID"})


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
