"""DynamoDB attribute values from and to Python values (boto3's `TypeSerializer` /
`TypeDeserializer`, the low-level client's own conversion), and opaque page cursors.

The stores use these instead of hand-written `{"S": …}` literals. Numbers come back as
`Decimal` (DynamoDB's exact numbers); `plain` turns whole ones into `int` for JSON answers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from typing import Any

from success_metrics.errors import ValidationFailedError


@cache
def _converters() -> tuple[Any, Any]:
    # boto3 and botocore load on first use, not at import (cold start): importing
    # boto3.dynamodb.types imports boto3 itself.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def serialize(values: dict[str, Any]) -> dict[str, Any]:
    """`{"name": value}` as `{"name": {"S": …}}`; None values are left out."""
    serializer = _converters()[0]
    return {k: serializer.serialize(v) for k, v in values.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = _converters()[1]
    return {k: plain(deserializer.deserialize(v)) for k, v in item.items()}


def plain(value: Any) -> Any:
    """Decimals as int when whole, else float, through lists and maps."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def encode_cursor(key: dict[str, Any]) -> str:
    """A `LastEvaluatedKey` (low-level form) as an opaque URL-safe token."""
    raw = json.dumps(deserialize(key), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, names: frozenset[str]) -> dict[str, Any]:
    """The `ExclusiveStartKey` a cursor of `encode_cursor` stands for; a cursor that is not
    one (wrong encoding, other attributes, non-string values) is a 400, never a 5xx."""
    problem = ValidationFailedError("cursor is not one this API gave")
    if len(cursor) > 2048:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise problem from exc
    if (
        not isinstance(key, dict)
        or set(key) != names
        or not all(isinstance(v, str) and 0 < len(v) <= 1024 for v in key.values())
    ):
        raise problem
    return serialize(key)


def every(client: Any, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item a `query` or `scan` returns, page after page (low-level form)."""
    for page in client.get_paginator(operation).paginate(**request):
        yield from page.get("Items", [])


def get(client: Any, table: str, key: dict[str, Any], consistent: bool = True) -> Any:
    """One item (low-level form), or None; strongly consistent unless told otherwise."""
    return client.get_item(TableName=table, Key=key, ConsistentRead=consistent).get("Item")
