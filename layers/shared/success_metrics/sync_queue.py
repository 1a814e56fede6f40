"""Accepted events on their way to platform sync and to metrics: packed into few SQS messages.

A message is `{"org_id", "webhook_id", "events": [<stored document>, ...]}`, at most
MESSAGE_BYTES long; SendMessageBatch carries up to 10 messages and 256 KiB per call.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Iterator
from typing import Any

from success_metrics import aws

MESSAGE_BYTES = 240 * 1024
BATCH_BYTES = 250 * 1024  # SQS allows 256 KiB per batch, attributes included
BATCH_ENTRIES = 10
_ENVELOPE = len('{"org_id":"","webhook_id":"","events":[]}')


def pack(org_id: str, webhook_id: str, documents: Iterable[str]) -> Iterator[str]:
    """Messages of whole events, each under MESSAGE_BYTES (documents are at most 64 KiB)."""
    overhead = _ENVELOPE + len(org_id) + len(json.dumps(webhook_id))
    chunk: list[str] = []
    size = overhead
    for doc in documents:
        doc_size = len(doc.encode("utf-8")) + 1
        if chunk and size + doc_size > MESSAGE_BYTES:
            yield _message(org_id, webhook_id, chunk)
            chunk, size = [], overhead
        chunk.append(doc)
        size += doc_size
    if chunk:
        yield _message(org_id, webhook_id, chunk)


def chunks(documents: Iterable[str], limit: int = MESSAGE_BYTES - 1024) -> Iterator[list[str]]:
    """Groups of JSON documents whose joined size stays under `limit` bytes."""
    chunk: list[str] = []
    size = 0
    for doc in documents:
        doc_size = len(doc.encode("utf-8")) + 1
        if chunk and size + doc_size > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(doc)
        size += doc_size
    if chunk:
        yield chunk


def _message(org_id: str, webhook_id: str, docs: list[str]) -> str:
    return (
        f'{{"org_id":{json.dumps(org_id)},"webhook_id":{json.dumps(webhook_id)},'
        f'"events":[{",".join(docs)}]}}'
    )


def enqueue(org_id: str, webhook_id: str, documents: Iterable[str], queue_url: str) -> int:
    """Send the documents; returns the number of messages. Raises if any entry failed."""
    return send_bodies(queue_url, org_id, pack(org_id, webhook_id, documents))


def send_bodies(queue_url: str, org_id: str, bodies: Iterable[str]) -> int:
    """Send message bodies in as few SendMessageBatch calls as the limits allow."""
    sent = 0
    entries: list[str] = []
    size = 0
    for message in bodies:
        length = len(message.encode("utf-8"))
        if entries and (len(entries) == BATCH_ENTRIES or size + length > BATCH_BYTES):
            sent += _send(queue_url, org_id, entries)
            entries, size = [], 0
        entries.append(message)
        size += length
    if entries:
        sent += _send(queue_url, org_id, entries)
    return sent


def _send(queue_url: str, org_id: str, bodies: list[str]) -> int:
    response = aws.sqs().send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {
                "Id": str(i),
                "MessageBody": body,
                "MessageAttributes": {"org_id": {"DataType": "String", "StringValue": org_id}},
            }
            for i, body in enumerate(bodies)
        ],
    )
    failed = response.get("Failed", [])
    if failed:
        retry = [bodies[int(f["Id"])] for f in failed if not f.get("SenderFault")]
        if len(retry) != len(failed):
            codes = sorted({f["Code"] for f in failed})
            raise RuntimeError(f"SQS rejected sync messages: {codes}")
        # Server-side failures are transient: one direct retry, then let the caller fail.
        for body in retry:
            aws.sqs().send_message(
                QueueUrl=queue_url,
                MessageBody=body,
                MessageAttributes={"org_id": {"DataType": "String", "StringValue": org_id}},
            )
    return len(bodies)


def pack_events(docs: list[str]) -> str:
    """Events gzipped and base64-encoded: JSON shrinks about tenfold, so a delivery batch under
    Lambda's 6 MB payload holds ten times more events and fills platform requests."""
    raw = ("[" + ",".join(docs) + "]").encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6)).decode("ascii")


def unpack_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "events_gzip" in body:
        events: list[dict[str, Any]] = json.loads(
            gzip.decompress(base64.b64decode(body["events_gzip"]))
        )
        return events
    return list(body.get("events", []))
