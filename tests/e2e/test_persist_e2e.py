"""`make run ARGS=--persist`: the stack killed with SIGKILL, then stopped with Ctrl-C, and each
time started again from its snapshot with its organizations, events, metrics, exports and
queued deliveries."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.runner import free_port
from tests.e2e.conftest import (
    DEMO_SEASON,
    ROOT,
    RunningStack,
    demo_season_metrics,
    start_stack,
    stop_stack,
)
from tests.support.local_stack import aws, wait_until


def webhook_ids(stack: RunningStack) -> set[str]:
    found = httpx.get(f"{stack.sink_url}/_sink/requests", params={"path": "/webhooks/demo"}).json()
    return {e["id"] for r in found["requests"] for e in json.loads(r["body"])["events"]}


def stored_event(stack: RunningStack, event_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        aws(stack, "dynamodb")
        .get_item(
            TableName=stack.state["environment"]["EVENTS_TABLE"],
            Key={"pk": {"S": f"{stack.org['org_id']}#{event_id}"}},
        )
        .get("Item")
    )
    return found


def snapshot_after(stack: RunningStack, moment: float) -> bool:
    snapshot = stack.state_dir / "persist" / "snapshot.pickle"
    return snapshot.exists() and snapshot.stat().st_mtime > moment


@pytest.fixture
def started() -> Iterator[list[RunningStack]]:
    """The stacks a test starts, killed at its end if still running (a failed assertion
    must not leave a stack behind)."""
    stacks: list[RunningStack] = []
    yield stacks
    for running in stacks:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def test_the_stack_keeps_its_data_across_a_kill_and_a_restart(
    tmp_path: Path, started: list[RunningStack]
) -> None:
    # The same ports each time: the demo organization's webhook names the sink's.
    ports = {"aws": free_port(), "api": free_port(), "sink": free_port()}
    first = start_stack(tmp_path, "--persist", "--no-schedules", ports=ports)
    started.append(first)
    http = httpx.Client(timeout=60)
    org = first.org
    key = org["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    season = demo_season_metrics(first, http, key)
    job = first.smctl_json(
        "export", "create", "--format", "csv", "--from", DEMO_SEASON["from"],
        "--to", DEMO_SEASON["to"], "--type", "user.signed_up", "--wait",
    )  # fmt: skip
    assert job["status"] == "succeeded", job
    # A delivery queued and not yet made: the pollers paused, an event accepted.
    assert http.post(f"{first.api_url}/_local/pollers/pause").status_code == 200
    time.sleep(2)  # a poller's long poll under way (1 s) ends before the event is sent
    event = json.loads((ROOT / "events/samples/subscription_started.json").read_text())
    event["id"] = "evt_persist_" + uuid.uuid4().hex
    # today, outside the demo season, whose figures are compared across the restart
    event["occurred_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sample = tmp_path / "one-event.json"
    sample.write_text(json.dumps(event))
    assert first.smctl_json("send", str(sample))["response"]["accepted"] == 1
    accepted = time.time()
    assert event["id"] not in webhook_ids(first)
    # A snapshot may have been written between the event's last write and `accepted` (it then
    # holds the event, but is older than `accepted`, and nothing writes after it with the
    # pollers paused). A request that changes nothing still marks the data as changed, so the
    # next snapshot is taken after it, and after the event.
    aws(first, "dynamodb").delete_item(
        TableName=first.state["environment"]["CONTROL_TABLE"], Key={"pk": {"S": "e2e#nudge"}}
    )
    wait_until(lambda: snapshot_after(first, accepted), 10, "a snapshot after the event")

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)

    second = start_stack(tmp_path, "--persist", "--no-schedules", ports=ports, log_name="2.log")
    started.append(second)
    log = second.log.read_text()
    assert "[devstack] persist: restored" in log, log[-2000:]
    assert "demo events" not in log  # the demo organization is the one restored, not a new one
    assert second.org == org
    assert (
        http.get(f"{second.api_url}/v1/organization", headers=auth).json()["org_id"]
        == (org["org_id"])
    )
    # The queued delivery is made by the restarted stack, once.
    wait_until(lambda: event["id"] in webhook_ids(second), 60, "the queued delivery")
    assert stored_event(second, event["id"]) is not None
    assert demo_season_metrics(second, http, key) == season
    again = second.smctl_json("export", "show", job["id"])
    assert again["status"] == "succeeded"
    target = tmp_path / "signups.csv"
    saved = second.smctl_json("export", "download", job["id"], "-o", str(target))
    assert saved["bytes"] == target.stat().st_size == job["file"]["bytes"]
    # The delivery was signed with the destination's secret, sealed by KMS before the kill.
    delivery = httpx.get(
        f"{second.sink_url}/_sink/requests", params={"path": "/webhooks/demo"}
    ).json()["requests"][-1]
    assert delivery["status"] == 200, delivery

    # Ctrl-C: the last snapshot is taken on the way out, and the next start has it all.
    created = second.smctl_json("key", "create", org["org_id"], "--scope", "metrics:read")
    stop_stack(second)
    third = start_stack(tmp_path, "--persist", "--no-schedules", ports=ports, log_name="3.log")
    started.append(third)
    try:
        listed = json.dumps(third.smctl_json("key", "list", org["org_id"]))
        assert created["key_id"] in listed
        assert stored_event(third, event["id"]) is not None
        assert webhook_ids(third) == set()  # nothing delivered twice after a clean stop
    finally:
        stop_stack(third)
        http.close()
