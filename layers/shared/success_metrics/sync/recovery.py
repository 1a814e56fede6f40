"""Recovery jobs: "retry everything that failed since …", as one tracked job.

A job names a time (the deliveries whose last attempt is at or after it) and optionally one
destination. It goes through the delivery log's status index, newest first, for the final
states a delivery can be left in (`failed`, `partial`, `dead_lettered`), reopens each one as a
retry of it would (`delivery_log.reopen`) and queues it again, in SendMessageBatch calls. The job
runs in the delivery worker, off the request path, from a message on the delivery queue; its
progress (found, queued, skipped and why) is saved after every page, with the index cursor, so
an interrupted job resumes where it stood and a long one hands over to a fresh invocation.

A reopened delivery leaves the state's partition of the index (it is `pending` again); one that
fails again is newer than the cursor, so a job never loops on what it queued itself.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from success_metrics import sync_queue
from success_metrics.errors import ConflictError, NotFoundError
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores.deliveries import DeliveryStore
from success_metrics.sync import delivery_log

STATES = ("failed", "partial", "dead_lettered")
PAGE = 100
HANDOVER_MS = 15_000
RUNNING = ("queued", "running")


def store() -> DeliveryStore:
    return DeliveryStore.default()


def _expires(now: int) -> int:
    return now + get_settings().delivery_log_days * 86400


def start(org_id: str, key_id: str, since: int, dest_id: str | None) -> dict[str, Any]:
    """Create the job and queue its first run; one job at a time per organization."""
    log = store()
    for job in log.recoveries(org_id, 5):
        if job["status"] in RUNNING:
            raise ConflictError(
                f"recovery {job['recovery_id']} is still running: wait for it to finish"
            )
    now = int(time.time())
    doc: dict[str, Any] = {
        "recovery_id": f"rec_{now:010d}{secrets.token_hex(4)}",
        "since": since,
        "dest_id": dest_id,
        "requested_by": key_id,
        "created_at": now,
        "finished_at": None,
        "status": "queued",
        "found": 0,
        "queued": 0,
        "skipped": {},
        "stage": 0,
        "cursor": None,
        "runs": 0,
        "error": None,
    }
    log.put_recovery(org_id, doc, _expires(now))
    _queue_run(org_id, doc["recovery_id"])
    return doc


def _queue_run(org_id: str, recovery_id: str) -> None:
    sync_queue.send_bodies(
        get_settings().delivery_queue_url,
        org_id,
        [json.dumps({"org_id": org_id, "recovery_id": recovery_id})],
    )


def get(org_id: str, recovery_id: str) -> dict[str, Any]:
    found = store().recovery(org_id, recovery_id)
    if found is None:
        raise NotFoundError(f"recovery {recovery_id} does not exist")
    return found


def recent(org_id: str, limit: int = 5) -> list[dict[str, Any]]:
    return store().recoveries(org_id, limit)


def work(org_id: str, recovery_id: str, remaining_ms: Callable[[], int]) -> str:
    """Run (or resume) one job until it is done or the invocation's time runs short; returns
    `done`, `handed over` or `gone`."""
    log = store()
    job = log.recovery(org_id, recovery_id)
    if job is None or job["status"] not in RUNNING:
        return "gone"
    job.update(status="running", runs=int(job["runs"]) + 1)
    expires_at = _expires(int(job["created_at"]))
    while job["stage"] < len(STATES):
        if remaining_ms() < HANDOVER_MS:
            log.put_recovery(org_id, job, expires_at)
            _queue_run(org_id, recovery_id)
            return "handed over"
        page = delivery_log.list_page(
            org_id,
            STATES[job["stage"]],
            PAGE,
            job["cursor"],
            dest_id=job["dest_id"],
            since=int(job["since"]),
        )
        bodies = []
        for summary in page.summaries:
            job["found"] += 1
            try:
                payload = delivery_log.reopen(org_id, summary["delivery_id"])
            except (NotFoundError, ConflictError) as refused:
                reason = "nothing to resend" if isinstance(refused, NotFoundError) else "withheld"
                job["skipped"][reason] = job["skipped"].get(reason, 0) + 1
                continue
            bodies.append(json.dumps(payload))
        if bodies:
            sync_queue.send_bodies(get_settings().delivery_queue_url, org_id, bodies)
            job["queued"] += len(bodies)
            metrics.add_metric(name="DeliveriesRecovered", unit=MetricUnit.Count, value=len(bodies))
        if page.cursor is None:
            job.update(stage=job["stage"] + 1, cursor=None)
        else:
            job["cursor"] = page.cursor
        log.put_recovery(org_id, job, expires_at)
    job.update(status="done", finished_at=int(time.time()))
    log.put_recovery(org_id, job, expires_at)
    logger.info("recovery done", extra={"recovery_id": recovery_id, "queued": job["queued"]})
    return "done"


def fail(org_id: str, recovery_id: str, error: str) -> None:
    """Mark a job failed (its message's last receive failed too)."""
    log = store()
    job = log.recovery(org_id, recovery_id)
    if job is None:
        return
    job.update(status="failed", error=error[:300], finished_at=int(time.time()))
    log.put_recovery(org_id, job, _expires(int(job["created_at"])))
