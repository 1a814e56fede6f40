"""SQS event sources: one poller thread per `SQS` event of the template, like Lambda's.

Each poller receives up to `BatchSize` messages (collecting for `MaximumBatchingWindowInSeconds`),
invokes the function with a real SQS batch event, then deletes what succeeded: everything when
the handler returns normally, all but the reported `batchItemFailures` when the event source has
`ReportBatchItemFailures`, nothing when the handler raises. Messages left on the queue come back
after their visibility timeout, and the emulator moves them to the dead-letter queue after
`maxReceiveCount` receives, as SQS does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from devstack.functions import LocalFunction
from devstack.lambda_events import sqs_record


@dataclass
class PollerStats:
    batches: int = 0
    messages: int = 0
    failures: int = 0
    errors: int = 0


@dataclass
class SqsPoller:
    name: str
    function: LocalFunction
    queue_url: str
    queue_arn: str
    batch_size: int
    window_seconds: float
    report_failures: bool
    sqs: Any
    stats: PollerStats = field(default_factory=PollerStats)
    _stop: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sqs-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window_seconds
        while len(messages) < self.batch_size and not self._stop.is_set():
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=1 if not messages else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if not got and (messages or time.monotonic() >= deadline):
                break
            if messages and time.monotonic() >= deadline:
                break
        return messages

    def _run(self) -> None:
        from devstack import iam

        # Lambda's event source mapping receives and deletes with the function's own role.
        with iam.acting_as(self.function.name):
            self._loop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._paused.is_set():
                time.sleep(0.2)
                continue
            try:
                messages = self._receive()
            except Exception as exc:  # the emulator is shutting down or restarting
                if not self._stop.is_set():
                    print(f"[devstack] poller {self.name}: receive failed: {exc}")
                    time.sleep(1)
                continue
            if messages:
                self.poll_once(messages)

    def poll_once(self, messages: list[dict[str, Any]]) -> None:
        event = {
            "Records": [
                sqs_record(
                    self.queue_arn,
                    m["MessageId"],
                    m["ReceiptHandle"],
                    m["Body"],
                    m.get("Attributes"),
                    m.get("MessageAttributes"),
                )
                for m in messages
            ]
        }
        self.stats.batches += 1
        self.stats.messages += len(messages)
        try:
            result = self.function.invoke(event)
        except Exception as exc:
            # Like Lambda: the whole batch returns to the queue after its visibility timeout.
            self.stats.errors += 1
            print(f"[devstack] {self.function.name} failed on a batch of {len(messages)}: {exc}")
            return
        failed: set[str] = set()
        if self.report_failures and isinstance(result, dict):
            failed = {f.get("itemIdentifier", "") for f in result.get("batchItemFailures") or []}
        self.stats.failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
