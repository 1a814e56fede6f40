"""Dead letters, per organization: what each tenant can see and replay of its own messages.

The dead-letter queues are shared by every organization (SQS moves a message there after the
queue's `maxReceiveCount` receives); they stay the operator's (`smctl dlq`), with their alarms.
A tenant must see only its own, so each consumer, when a message fails on the receive after
which SQS dead-letters it, also records it under the message's organization (the delivery log's
table, `stores.deliveries`): queue, message id, when, receives, why, what it carried, and the
body, gzipped, for a replay. Records expire with the queue's retention (14 days), or the
organization's when shorter: bodies carry events.

A replay sends the recorded body to its queue again with `replay_of` = the first message's id,
which the consumers use where they key work on the message id (routing, metrics claims), so a
replay by the tenant and another by the operator do the work once: delivered events are never
sent again, metrics are counted once, exports and erasures resume from their saved progress.

What this cannot see: a message whose last receive ended without the handler returning (the
function timed out or crashed) reaches the dead-letter queue unrecorded; the operator's queue
and its alarm still show it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from success_metrics import aws
from success_metrics.errors import ConflictError, NotFoundError, ValidationFailedError
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import organizations
from success_metrics.stores.deliveries import DeliveryStore
from success_metrics.sync_queue import pack_events, unpack_events

# queue kind → the setting naming its URL; the alarm queue's messages belong to no tenant
QUEUES: dict[str, str] = {
    "sync": "sync_queue_url",
    "delivery": "delivery_queue_url",
    "metrics": "metrics_queue_url",
    "export": "export_queue_url",
    "gdpr": "gdpr_queue_url",
}
# the receive after which SQS dead-letters a message: each queue's maxReceiveCount in
# template.yaml (a unit test holds them equal)
MAX_RECEIVES: dict[str, int] = {"sync": 5, "delivery": 8, "metrics": 5, "export": 5, "gdpr": 5}
RETENTION_SECONDS = 14 * 86400  # the queues' MessageRetentionPeriod
_CARRIED = ("delivery_id", "dest_id", "export_id", "erasure_id", "webhook_id", "recovery_id")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# why each message of the invocation under way failed, as its handler said
_reasons: dict[str, str] = {}


def store() -> DeliveryStore:
    return DeliveryStore.default()


def failed(message_id: str, why: BaseException | str) -> None:
    """Say why a message failed (kept if it turns out to be its last receive)."""
    text = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
    _reasons[message_id] = text[:500]


def last_receive(queue: str, receives: int) -> bool:
    """Whether SQS dead-letters a message of `queue` if this receive of it fails."""
    return receives >= MAX_RECEIVES[queue]


def source_id(record: dict[str, Any]) -> str:
    """The id of the message this record is, or replays (`replay_of`)."""
    replayed = (record.get("messageAttributes") or {}).get("replay_of") or {}
    return str(replayed.get("stringValue") or record["messageId"])


def recorded(queue: str) -> Callable[[Handler], Handler]:
    """Decorate an SQS consumer's Lambda handler: the records it reports failed (or all of
    them, when it raises) on their last receive are recorded as the organization's."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue kind {queue}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(event: dict[str, Any], context: Any) -> dict[str, Any]:
            _reasons.clear()
            records = event.get("Records", [])
            try:
                answer = handler(event, context)
            except Exception as error:
                for record in records:
                    _reasons.setdefault(record["messageId"], f"{type(error).__name__}: {error}")
                note(queue, records, {r["messageId"] for r in records})
                raise
            failures = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            note(queue, records, failures)
            return answer

        return wrapper

    return decorate


def _carried(body: dict[str, Any]) -> dict[str, Any]:
    carried: dict[str, Any] = {k: body[k] for k in _CARRIED if isinstance(body.get(k), str)}
    if "events" in body or "events_gzip" in body:
        try:
            carried["events"] = len(unpack_events(body))
        except (ValueError, TypeError, OSError):
            carried["events"] = None
    return carried


def note(queue: str, records: Iterable[dict[str, Any]], failed_ids: set[str]) -> int:
    """Record the failed records that SQS dead-letters next; returns how many. Never raises:
    the batch answer matters more than this record (the operator's queue has the message)."""
    written = 0
    for record in records:
        receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        if record["messageId"] not in failed_ids or not last_receive(queue, receives):
            continue
        try:
            written += _record(queue, record, receives)
        except Exception:
            logger.exception("could not record a dead letter for its organization")
    if written:
        metrics.add_metric(name="DeadLettersRecorded", unit=MetricUnit.Count, value=written)
    return written


def _record(queue: str, record: dict[str, Any], receives: int) -> int:
    try:
        body = json.loads(record["body"])
    except ValueError:
        body = None
    org_id = body.get("org_id") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(org_id, str) or not org_id:
        logger.warning("a dead letter names no organization", extra={"queue": queue})
        return 0
    now = int(time.time())
    doc = {
        "queue": queue,
        "message_id": source_id(record),
        "at": now,
        "receives": receives,
        "reason": _reasons.get(record["messageId"], f"failed on its last receive ({receives})"),
        "carried": _carried(body),
        "replayed_at": None,
    }
    store().put_dead_letter(org_id, doc, record["body"], now + _keep_seconds(org_id))
    logger.warning(
        "dead-lettered", extra={"queue": queue, "org_id": org_id, "message_id": doc["message_id"]}
    )
    return 1


def _keep_seconds(org_id: str) -> int:
    try:
        retention = organizations.get_organization(org_id).retention_days * 86400
    except NotFoundError:
        retention = RETENTION_SECONDS
    return min(RETENTION_SECONDS, retention)


# -- the tenant's side


def listing(org_id: str) -> dict[str, Any]:
    """The organization's dead letters, newest first, with counts per queue (replayed ones
    are listed, not counted)."""
    docs = store().dead_letters(org_id, int(time.time()))
    counts = dict.fromkeys(QUEUES, 0)
    for doc in docs:
        if not doc.get("replayed_at"):
            counts[doc["queue"]] = counts.get(doc["queue"], 0) + 1
    return {"counts": counts, "dead_letters": docs}


def _check_queue(queue: str) -> None:
    if queue not in QUEUES:
        raise ValidationFailedError(f"queue is one of {', '.join(QUEUES)}")


def replay(org_id: str, queue: str, message_id: str) -> dict[str, Any]:
    """Send one dead letter to its queue again, once."""
    _check_queue(queue)
    log = store()
    found = log.dead_letter(org_id, queue, message_id)
    if found is None or found[2] <= time.time():
        raise NotFoundError(f"no dead letter {message_id} in the {queue} queue")
    doc, body, expires_at = found
    if doc.get("replayed_at"):
        raise ConflictError(f"dead letter {message_id} was already replayed")
    now = int(time.time())
    if not log.claim_replay(org_id, doc, now):
        raise ConflictError(f"dead letter {message_id} was already replayed")
    try:
        aws.sqs().send_message(
            QueueUrl=getattr(get_settings(), QUEUES[queue]),
            MessageBody=body,
            MessageAttributes={
                "org_id": {"DataType": "String", "StringValue": org_id},
                "replay_of": {"DataType": "String", "StringValue": message_id},
            },
        )
    except Exception:
        log.put_dead_letter(org_id, doc, body, expires_at)  # not replayed after all
        raise
    return {**doc, "replayed_at": now}


def replay_all(org_id: str, queue: str) -> int:
    """Replay every dead letter of one queue not replayed yet; returns how many."""
    _check_queue(queue)
    replayed = 0
    for doc in listing(org_id)["dead_letters"]:
        if doc["queue"] != queue or doc.get("replayed_at"):
            continue
        try:
            replay(org_id, queue, doc["message_id"])
        except (ConflictError, NotFoundError):
            continue  # replayed or expired meanwhile
        replayed += 1
    return replayed


def scrub(org_id: str, transform: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> int:
    """Apply `transform` to the events the organization's dead letters carry (GDPR erasure);
    rewrites those it changed and returns how many."""
    log = store()
    changed = 0
    for doc, raw, expires_at in log.every_dead_letter(org_id):
        body = json.loads(raw)
        if not isinstance(body, dict) or not ("events" in body or "events_gzip" in body):
            continue
        events = unpack_events(body)
        kept = transform(events)
        if kept == events:
            continue
        if "events_gzip" in body:
            body["events_gzip"] = pack_events(
                [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in kept]
            )
        else:
            body["events"] = kept
        doc["carried"] = _carried(body)
        log.put_dead_letter(org_id, doc, json.dumps(body, separators=(",", ":")), expires_at)
        changed += 1
    return changed
