"""Looking at the running local stack from the end-to-end tests: its AWS emulator, the sink's
recorded requests, and waiting for the pipeline."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import boto3
import httpx

from tests.e2e.conftest import RunningStack


def aws(stack: RunningStack, service: str) -> Any:
    """An AWS client on the stack's emulator, over HTTP, to look at what the system stored
    (as the stack's operator: the emulator enforces IAM)."""
    return boto3.client(
        service,
        endpoint_url=stack.state["aws_endpoint"],
        region_name=stack.state["region"],
        **stack.state["credentials"],
    )


def sink_requests(stack: RunningStack) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.sink_url}/_sink/requests", timeout=30).json()
    return list(answer["requests"])


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def counted_metrics(
    stack: RunningStack, http: httpx.Client, key: str, paying: int
) -> dict[str, Any]:
    """The organization's metrics of the last days, once `paying` new paying suppliers are
    counted (the metrics consumer may still be busy with the demo season)."""
    today = date.today()
    params = {"from": str(today - timedelta(days=2)), "to": str(today), "granularity": "day"}

    def read() -> dict[str, Any] | None:
        answer = http.get(
            f"{stack.api_url}/v1/metrics",
            params=params,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body if body["totals"]["new_paying_suppliers"] == paying else None

    found: dict[str, Any] = wait_until(read, 180, f"{paying} new paying suppliers counted")
    return found
