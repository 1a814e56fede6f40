"""The call log the load benchmark replays: every call as botocore received it, bytes intact,
with the function, its thread and its invocation."""

from __future__ import annotations

import threading
from pathlib import Path

from devstack import calls


def test_calls_are_read_back_as_written_with_their_lane_and_invocation(tmp_path: Path) -> None:
    log = calls.CallLog(tmp_path / "calls.jsonl")
    params = {
        "TableName": "t",
        "Item": {"pk": {"S": "a"}, "blob": {"B": b"\x00\xffbytes"}, "list": {"L": [{"N": "1"}]}},
    }
    marker = calls.invocation.set("inv-1")
    log.write("WebhookReceiveFunction", "dynamodb", "PutItem", params)
    calls.invocation.reset(marker)
    worker = threading.Thread(
        target=log.write,
        args=("SyncRouterFunction", "sqs", "ReceiveMessage", {"QueueUrl": "q"}),
        name="sqs-poller",
    )
    worker.start()
    worker.join()
    log.close()
    log.write("SyncRouterFunction", "sqs", "DeleteMessageBatch", {})  # after close: dropped

    first, second = calls.read(tmp_path / "calls.jsonl")
    assert (first.function, first.service, first.operation) == (
        "WebhookReceiveFunction",
        "dynamodb",
        "PutItem",
    )
    assert first.params == params
    assert first.invocation == "inv-1"
    assert first.lane == f"WebhookReceiveFunction@{threading.current_thread().name}"
    assert (second.lane, second.invocation) == ("SyncRouterFunction@sqs-poller", None)
