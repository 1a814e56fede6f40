"""The one batch helper: chunked to DynamoDB's limits, `Unprocessed*` retried with backoff until
done, and an error (never a silent short answer) when DynamoDB keeps throttling. moto never
returns unprocessed work, so a fake client that does stands in for a throttled table."""

from __future__ import annotations

from typing import Any

import pytest

from success_metrics.stores import batch


class Throttled:
    """Leaves the last `hold` keys or items of every request unprocessed, `times` times."""

    def __init__(self, items: dict[str, dict[str, Any]], times: int, hold: int = 1) -> None:
        self.items, self.times, self.hold = items, times, hold
        self.calls: list[int] = []
        self.written: list[dict[str, Any]] = []

    def _split(self, entries: list[Any]) -> tuple[list[Any], list[Any]]:
        if self.times > 0 and len(entries) > 0:
            self.times -= 1
            cut = max(0, len(entries) - self.hold)
            return entries[:cut], entries[cut:]
        return entries, []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, spec)] = RequestItems.items()
        self.calls.append(len(spec["Keys"]))
        assert len(spec["Keys"]) <= batch.GET_LIMIT
        done, left = self._split(spec["Keys"])
        found = [self.items[k["pk"]["S"]] for k in done if k["pk"]["S"] in self.items]
        unprocessed = {table: {**spec, "Keys": left}} if left else {}
        return {"Responses": {table: found}, "UnprocessedKeys": unprocessed}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, requests)] = RequestItems.items()
        self.calls.append(len(requests))
        assert len(requests) <= batch.WRITE_LIMIT
        done, left = self._split(requests)
        self.written += done
        return {"UnprocessedItems": {table: left} if left else {}}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda seconds: None)


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{n}"}}


def test_reads_every_key_in_chunks_of_100_through_unprocessed_keys() -> None:
    items = {f"k{n}": {"pk": {"S": f"k{n}"}, "n": n} for n in range(250)}
    client = Throttled(items, times=5, hold=30)
    found = list(batch.get(client, "T", [key(n) for n in range(260)]))  # 10 do not exist
    assert sorted(i["n"] for i in found) == list(range(250))
    assert max(client.calls) == 100
    assert len(client.calls) == 3 + 5  # three chunks, five retries of what was left


def test_writes_every_request_in_chunks_of_25_through_unprocessed_items() -> None:
    client = Throttled({}, times=4, hold=10)
    assert batch.delete(client, "T", [key(n) for n in range(60)]) == 60
    assert sorted(r["DeleteRequest"]["Key"]["pk"]["S"] for r in client.written) == sorted(
        f"k{n}" for n in range(60)
    )
    assert max(client.calls) == 25


@pytest.mark.parametrize("operation", ["get", "write"])
def test_sustained_throttling_is_an_error_not_a_short_answer(operation: str) -> None:
    client = Throttled({"k1": {"pk": {"S": "k1"}}}, times=10_000)

    def run() -> object:
        if operation == "get":
            return list(batch.get(client, "T", [key(1), key(2)]))
        return batch.delete(client, "T", [key(1), key(2)])

    with pytest.raises(batch.BatchIncompleteError, match="still unprocessed after 8 attempts"):
        run()
    assert len(client.calls) == batch.ATTEMPTS


def test_backoff_grows_between_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    client = Throttled({}, times=4)
    batch.delete(client, "T", [key(1), key(2)])
    assert len(waits) == 4
    # exponential from 50 ms (with up to 50 ms of jitter), capped at 2 s
    assert waits[-1] > waits[0]
    assert all(0 < w <= 2.0 for w in waits)
