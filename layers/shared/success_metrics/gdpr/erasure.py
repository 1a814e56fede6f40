"""GDPR erasure (SPEC §7): a job that removes one subject from every place the system keeps
data. The subject is a user (`{"user_id": ...}`) or an anonymous id (`{"anonymous_id": ...}`, for
people known only by a device or cookie id): the same job, and the same receipt, for both.

`POST /v1/gdpr/erasures` suppresses the subject at once (see `suppression`), records a job and
queues it, delayed by the organization-profile cache lifetime so that no instance can still
store or forward the subject's events once deletion starts. The GDPR worker then runs the steps
in order, saving progress after every page of work, so a crash or a handover resumes where it
stopped and running a step twice changes nothing:

1. `events`: the subject's events, found through the `ByUser` index (a user: the user id, then
   every anonymous id those events carried, for the events before they signed in; an anonymous
   id: its events without a user id), read in pages of 100, deleted with their metric claims
   (`metric_claims`); the ids each platform knew the subject by are collected on the way;
2. `consent`: every consent record and history entry of those ids;
3. `deliveries`: the subject's events are removed from delivery-log payloads, and mentions of
   the subject in other events there are replaced with "[erased]";
4. `references`: other stored events that mention the subject (a referral's `inviter_id`, say)
   get the same replacement, found through the mention index (`stores.mentions`: one key per
   id of the subject, never a scan, whatever the number of ids), resumable. It also deletes the
   subject's own events the per-user index does not list under its key: for an anonymous id,
   the events that carry it with a user id (after a sign-in on that device). `events` and
   `metric_claims` are done when it is;
5. `exports`: export files are deleted wholesale (exports do not record which users they hold):
   every `events` export of the organization, running or finished, is cancelled or withdrawn,
   its files, manifest and work files deleted and its links revoked; a user's own access
   requests are deleted with their records. `metrics` and `summary` exports hold aggregates only;
6. `mixpanel` and `ga4`: a deletion request to each configured destination, through the same
   retry rules and circuit breaker as deliveries (see `sync.deletions`).

Aggregated counters stay: they are numbers per day without personal data (GDPR Recital 26), and
rolling one user out would change reports other people already read. The per-user claims that
de-duplicate them are deleted; the user is suppressed, so nothing can be counted for them again.

The code: `gdpr.job` is the record (steps, progress, cursor, subject), `gdpr.steps` the steps over
the system's own data, `sync.deletions` the platforms' step; this module starts a job and runs
one invocation of the worker.

The job record is the receipt: the kind of subject, a keyed hash of its id (the same as the
suppression list's, which differs by kind), when it was requested, started and finished, and each
system's outcome and counts. While it runs the id and the collected ids are kept KMS-encrypted in
the record; they are removed when it finishes. The SQS message carries only the organization and
job ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from success_metrics import aws
from success_metrics.errors import NotFoundError, ValidationFailedError
from success_metrics.gdpr import checked_id, steps
from success_metrics.gdpr import job as job_record
from success_metrics.gdpr.job import (
    SYSTEMS,
    Erasure,
    JobStatus,
    Stale,
    Step,
    Subject,
    SystemProgress,
    SystemStatus,
)
from success_metrics.gdpr.steps import ERASED, Run
from success_metrics.models.destinations import Destination
from success_metrics.models.organizations import Organization
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import organizations, rate_limit, suppression
from success_metrics.stores.suppression import Kind

__all__ = ["ERASED", "SYSTEMS", "Erasure", "get", "request", "start", "suppression", "work"]

get = job_record.get


def request(body: Any) -> tuple[Kind, str]:
    """The subject of `POST /v1/gdpr/erasures`: `{"user_id": ...}` or `{"anonymous_id": ...}`,
    exactly one of them."""

    shape = '{"user_id": ...} or {"anonymous_id": ...}'
    if not isinstance(body, dict) or set(body) - {"user_id", "anonymous_id"}:
        raise ValidationFailedError(f"the body is {shape}")
    if len(body) != 1:
        raise ValidationFailedError(f"give exactly one of user_id or anonymous_id: {shape}")
    kind: Kind = "user" if "user_id" in body else "anonymous"
    return kind, checked_id(body, suppression.FIELDS[kind])


def start(
    org: Organization, key_id: str, subject_id: str, now: float, kind: Kind = "user"
) -> tuple[Erasure, bool]:
    """Suppress the subject (a user id, or an anonymous id with `kind` "anonymous") and queue an
    erasure; an erasure of the same subject still under way is returned instead of a second
    one. Returns (job, created)."""
    digest = suppression.subject_hash(org, subject_id, kind)
    existing = suppression.find(org, digest)
    if existing is not None:
        try:
            job = get(org.org_id, existing["erasure_id"])
        except NotFoundError:
            job = None
        if job is not None and job.finished_at is None:
            return job, False
    # Per organization: one tenant's burst of erasures cannot starve the others' (each has
    # a legal deadline), and a caller learns when to try again (429 with Retry-After).
    rate_limit.consume(
        org.org_id, "erasures", 1, org.limits.erasures_per_hour, now, "this organization"
    )
    job = Erasure(
        erasure_id=job_record.new_erasure_id(now),
        org_id=org.org_id,
        key_id=key_id,
        subject_kind=kind,
        subject_hash=digest,
        requested_at=now,
        updated_at=now,
    )
    suppression.add(org, digest, job.erasure_id, now)
    job.systems["suppression"] = SystemProgress(
        status=SystemStatus.DONE, count=1, started_at=now, finished_at=now
    )
    anonymous = [subject_id] if kind == "anonymous" else []
    subject = Subject(user=subject_id, kind=kind, anonymous_ids=anonymous)
    job = job_record.save(job, subject, org.retention_days, now)
    # No instance may hold a profile without the suppression flag when deletion starts.
    cached = get_settings().config_cache_seconds
    _enqueue(job, min(900, int(cached) + 5) if cached > 0 else 0)
    metrics.add_metric(name="ErasuresRequested", unit=MetricUnit.Count, value=1)
    return job, True


def _enqueue(job: Erasure, delay: int = 0) -> None:
    aws.sqs().send_message(
        QueueUrl=get_settings().gdpr_queue_url,
        MessageBody=json.dumps({"org_id": job.org_id, "erasure_id": job.erasure_id}),
        DelaySeconds=delay,
    )


# ------------------------------------------------------------------ the worker

LOCAL: dict[Step, Callable[[Run], bool]] = {
    Step.EVENTS: steps.erase_events,
    Step.CONSENT: steps.erase_consent,
    Step.DELIVERIES: steps.scrub_deliveries,
    Step.REFERENCES: steps.erase_references,
    Step.EXPORTS: steps.erase_exports,
}


def _platform_step(run: Run, kind: str) -> bool:
    # brings httpx and the delivery path's breaker: loaded only when a platform is called
    from success_metrics.sync import deletions
    from success_metrics.sync import worker as sync_worker

    attempts = deletions.Attempts(
        sync_worker.client(), _guard, get_settings(), last_attempt=run.last_attempt
    )
    system = run.begin(kind)
    status = deletions.erase_from(kind, run.org.org_id, run.subject, system, attempts, run.save)
    run.finish(kind, status)
    return True


def _guard(dest: Destination, send: Callable[[], Any]) -> Any:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError

    # brings httpx: imported where it is used
    from success_metrics.sync import platforms
    from success_metrics.sync import worker as sync_worker

    try:
        return sync_worker.guarded(dest, send)
    except CircuitBreakerOpenError:
        return platforms.Outcome(None, retryable=True, error="circuit breaker open")


def _run(run: Run) -> bool:
    """Run the steps from where the job stopped: True when they are all done, False when the
    invocation handed over to a fresh one."""
    if run.job.started_at is None:
        run.job.started_at = time.time()
        run.job.status = JobStatus.RUNNING
        run.save()
    while run.job.step is not Step.FINISHED:
        step = run.job.step
        done = LOCAL[step](run) if step in LOCAL else _platform_step(run, step.value)
        if not done:
            return False
        run.job.step = step.next()
        run.job.cursor = job_record.Cursor()
        run.save()
    return True


def _complete(run: Run) -> None:
    gaps = run.job.gaps()
    run.job.status = JobStatus.NEEDS_ATTENTION if gaps else JobStatus.SUCCEEDED
    run.job.finished_at = time.time()
    # The receipt keeps no id: the encrypted subject is dropped with this write.
    run.job = job_record.save(run.job, None, run.org.retention_days, time.time())
    metrics.add_metric(name="ErasuresCompleted", unit=MetricUnit.Count, value=1)
    logger.info(
        "erasure finished",
        extra={"erasure_id": run.job.erasure_id, "status": run.job.status.value, "gaps": gaps},
    )


def work(org_id: str, erasure_id: str, remaining_ms: Callable[[], int], receive_count: int) -> str:
    """Work on one job; returns "finished", "handed over", "waiting" or "nothing to do".

    Raises nothing for a failing platform: the job is saved and "waiting" returned, and SQS
    delivers it again later."""
    # brings httpx: loaded only when a job is worked on
    from success_metrics.sync.deletions import RetryLater

    try:
        job, sealed = job_record.load(org_id, erasure_id)
    except NotFoundError:
        logger.warning("erasure record not found", extra={"erasure_id": erasure_id})
        return "nothing to do"
    if job.finished_at is not None or sealed is None:
        return "nothing to do"
    org = organizations.get_organization(org_id, fresh=True)
    subject = job_record.open_subject(sealed, org_id)
    last = receive_count >= get_settings().gdpr_attempts
    run = Run(org, job, subject, remaining_ms, last)
    try:
        if not _run(run):
            _enqueue(run.job)
            return "handed over"
        _complete(run)
    except RetryLater:
        run.save()
        return "waiting"
    except Stale:
        return "nothing to do"
    return "finished"
