"""DynamoDB batch reads and writes, chunked to the API's limits, with the `Unprocessed*` part of
each answer retried with exponential backoff and jitter (tenacity), as the DynamoDB developer
guide asks ("if you retry the batch operation immediately, the underlying read or write requests
can still fail due to throttling"). A batch that still has unprocessed work after every attempt
raises `BatchIncompleteError` instead of silently returning less: a caller that reads fewer
items than exist, or leaves items undeleted, would lose or keep data without saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tenacity import (
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

GET_LIMIT = 100  # keys per BatchGetItem
WRITE_LIMIT = 25  # requests per BatchWriteItem
ATTEMPTS = 8  # about 7 s of backoff in all (0.1 s doubling to 2 s), inside every timeout


class BatchIncompleteError(Exception):
    """DynamoDB kept returning unprocessed keys or items (sustained throttling)."""


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_result(bool),  # retry while something is left unprocessed
        wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
        stop=stop_after_attempt(ATTEMPTS),
    )


def _get_chunk(client: Any, table: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {table: spec}

    def attempt() -> dict[str, Any]:
        nonlocal request
        answer = client.batch_get_item(RequestItems=request)
        found.extend(answer["Responses"].get(table, []))
        request = answer.get("UnprocessedKeys") or {}
        return request

    try:
        _retrying()(attempt)
    except RetryError as exc:
        left = len(request.get(table, {}).get("Keys", []))
        raise BatchIncompleteError(
            f"{table}: {left} keys still unprocessed after {ATTEMPTS} attempts"
        ) from exc
    return found


def _write_chunk(client: Any, table: str, requests: list[dict[str, Any]]) -> None:
    request: dict[str, Any] = {table: requests}

    def attempt() -> dict[str, Any]:
        nonlocal request
        answer = client.batch_write_item(RequestItems=request)
        request = answer.get("UnprocessedItems") or {}
        return request

    try:
        _retrying()(attempt)
    except RetryError as exc:
        left = len(request.get(table, []))
        raise BatchIncompleteError(
            f"{table}: {left} writes still unprocessed after {ATTEMPTS} attempts"
        ) from exc


def get(
    client: Any,
    table: str,
    keys: Iterable[dict[str, Any]],
    *,
    consistent: bool = False,
    projection: str | None = None,
    names: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The items of `keys` that exist (in no particular order), read in batches of 100."""
    wanted = list(keys)
    for start in range(0, len(wanted), GET_LIMIT):
        spec: dict[str, Any] = {"Keys": wanted[start : start + GET_LIMIT]}
        if consistent:
            spec["ConsistentRead"] = True
        if projection:
            spec["ProjectionExpression"] = projection
        if names:
            spec["ExpressionAttributeNames"] = names
        yield from _get_chunk(client, table, spec)


def write(client: Any, table: str, requests: Iterable[dict[str, Any]]) -> int:
    """Apply `{"PutRequest": …}` / `{"DeleteRequest": …}` requests in batches of 25; returns how
    many were applied."""
    pending = list(requests)
    for start in range(0, len(pending), WRITE_LIMIT):
        _write_chunk(client, table, pending[start : start + WRITE_LIMIT])
    return len(pending)


def delete(client: Any, table: str, keys: Iterable[dict[str, Any]]) -> int:
    """Delete the items of `keys`; returns how many keys were given."""
    return write(client, table, ({"DeleteRequest": {"Key": k}} for k in keys))
