"""The export worker: one SQS message is one unit of work, `plan` (the first) or `slice` n.

Planning (`exports.planner`) snapshots the figures of the range, estimates the rows and cuts the
range into slices of whole days; slice 0 runs at once and the others go to the queue, so a large
export fans out over as many workers (see docs/exports.md). A slice (`exports.slices`) streams
its rows into an S3 multipart upload, checkpointing after every part; the last slice to finish
finishes the job (`exports.finish`: the file, its SHA-256, the manifest, the email). This module
routes a message to that work and decides what a failure means: a handover is queued again, a
cancellation cleans up, a readable failure fails the job, and anything else is retried (sooner
than the queue's visibility timeout) until the last attempt, which fails the job.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.exports import email as emails
from success_metrics.exports.finish import cleanup, notify
from success_metrics.exports.layout import Budget, ExportFailed, Handover, Stopped
from success_metrics.exports.models import Status
from success_metrics.exports.planner import plan
from success_metrics.exports.slices import run_slice
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores.export_files import UploadGone

__all__ = ["Budget", "cleanup", "handle", "retry_delay", "retry_later", "send"]

RETRY_CAP_SECONDS = 900


def send(org_id: str, export_id: str, task: str, index: int = 0) -> None:
    body = {"org_id": org_id, "export_id": export_id, "task": task, "slice": index}
    aws.sqs().send_message(QueueUrl=get_settings().export_queue_url, MessageBody=json.dumps(body))


def retry_delay(attempt: int) -> int:
    """Seconds before a failed message's next attempt: EXPORT_RETRY_SECONDS tripled per attempt
    (5, 15, 45, 135 s by default: a deterministic failure ends `failed` within about 3.5 minutes,
    and a passing throttle gets time to pass), with up to 20 % jitter, at most 15 minutes."""
    base = get_settings().export_retry_seconds * 3 ** max(0, attempt - 1)
    jitter = base * 0.2 * secrets.randbelow(1000) / 1000
    return int(min(RETRY_CAP_SECONDS, base + jitter))


def retry_later(receipt_handle: str, attempt: int) -> None:
    """Bring a failed message back after `retry_delay` instead of the queue's visibility
    timeout. If SQS refuses, it still comes back, only later: nothing is lost."""
    delay = retry_delay(attempt)
    try:
        aws.sqs().change_message_visibility(
            QueueUrl=get_settings().export_queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=delay,
        )
    except ClientError:
        logger.warning("could not shorten the retry delay", exc_info=True)
        return
    logger.info("export message retried later", extra={"attempt": attempt, "delay_s": delay})


def handle(message: dict[str, Any], budget: Budget, attempt: int, now: float) -> None:
    """Work one message. Transient errors raise (SQS redelivers); the last attempt fails the
    job with a readable error instead, and emails it."""
    org_id, export_id = str(message["org_id"]), str(message["export_id"])
    logger.append_keys(org_id=org_id, export_id=export_id)
    job = jobs.find(org_id, export_id)
    if job is None:
        logger.warning("export message for an unknown job dropped")
        return
    try:
        _work(job, message, budget, now)
    except Handover:
        send(org_id, export_id, "slice", int(message.get("slice", 0)))
        metrics.add_metric(name="ExportHandovers", unit=MetricUnit.Count, value=1)
        logger.info("export handed over", extra={"slice": message.get("slice", 0)})
    except UploadGone as exc:
        if not _cleaned_if_cancelled(job):
            _fail(
                job,
                "the export's partial upload was discarded (uploads left unfinished for a day "
                "are removed); please request it again",
                now,
            )
            logger.warning("export upload gone", exc_info=exc)
    except Stopped:
        logger.info("export slice stopped", extra={"slice": message.get("slice", 0)})
        _cleaned_if_cancelled(job)
    except ExportFailed as exc:
        _fail(job, str(exc), now)
    except Exception as exc:
        if attempt < get_settings().export_attempts:
            raise
        logger.exception("export failed on its last attempt")
        _fail(job, f"{_plain(exc)} (after {attempt} attempts)", now)


def _cleaned_if_cancelled(job: jobs.Job) -> bool:
    """Clean a job up if it is cancelled now; whether it was."""
    current = jobs.find(job.org_id, job.export_id)
    if current is not None and current.status is Status.CANCELLED:
        cleanup(current)
        return True
    return False


def _plain(exc: Exception) -> str:
    if isinstance(exc, emails.EmailError):
        return f"{exc}: the file was written, but the email about it could not be sent"
    if isinstance(exc, ClientError):
        code = exc.response["Error"]["Code"]
        return (
            f"a storage service kept refusing the export ({code}); "
            "this is usually temporary, so please request it again"
        )
    return "the export stopped on an unexpected error; our team has the details in the logs"


def _fail(job: jobs.Job, error: str, now: float) -> None:
    if jobs.fail(job, error, now):
        metrics.add_metric(name="ExportsFailed", unit=MetricUnit.Count, value=1)
        cleanup(job, keep_file=False)
        failed = jobs.find(job.org_id, job.export_id) or job
        if failed.request.notify:
            subject, text, body = emails.failed(failed, error)
            emails.send(failed.request.notify, subject, text, body)


def _work(job: jobs.Job, message: dict[str, Any], budget: Budget, now: float) -> None:
    if job.status is Status.CANCELLED:
        cleanup(job)
        return
    if job.status is Status.FAILED:
        return
    if job.status is Status.SUCCEEDED:
        if not job.notified:
            notify(job)
        return
    if message.get("task") == "plan":
        if job.plan is None:
            planned = plan(job, now)
            if planned is None:
                _cleaned_if_cancelled(job)
                return
            job = planned
        assert job.plan is not None
        # Also when a planner died after planning: a slice that has not started has no
        # message yet. One sent twice is harmless (the slice's sequence number lets one
        # worker advance it; the other stops at its first save).
        for index in range(1, len(job.plan.slices)):
            if job.slice(index).seq == 0:
                send(job.org_id, job.export_id, "slice", index)
        run_slice(job, 0, budget)
    else:
        run_slice(job, int(message.get("slice", 0)), budget)
