"""Planning an export: snapshot the figures it needs besides events, estimate its rows from the
metric counters, cut the range into slices of whole days, and start the job (see
docs/exports.md)."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from success_metrics.exports import access, datasets
from success_metrics.exports.layout import ExportFailed, files, work_prefix
from success_metrics.exports.models import Dataset, DaySlice, Format, Plan, Status
from success_metrics.metrics.periods import Granularity
from success_metrics.observability import logger
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs


def cut(counts: dict[date, int], first: date, last: date) -> list[DaySlice]:
    """Whole-day slices of about the same number of rows (`counts` per day): as many as the
    rows need at `export_slice_rows` each, at most `export_max_slices`."""
    settings = get_settings()
    total = sum(counts.values())
    wanted = max(1, min(settings.export_max_slices, -(-total // settings.export_slice_rows)))
    per_slice = max(1, -(-total // wanted))
    slices: list[DaySlice] = []
    start, running = first, 0
    day = first
    while day <= last:
        running += counts.get(day, 0)
        if running >= per_slice and day < last and len(slices) < wanted - 1:
            slices.append(DaySlice(start=start, end=day))
            start, running = day + timedelta(days=1), 0
        day += timedelta(days=1)
    slices.append(DaySlice(start=start, end=last))
    return slices


def plan(job: jobs.Job, now: float) -> jobs.Job | None:
    """Snapshot what the export needs besides events, estimate its rows, cut it into slices,
    start it. The job as started (by this worker or another that planned it first); None if it
    was cancelled meanwhile (its work files are then cleaned up by the caller)."""
    r = job.request
    snapshot: dict[str, Any] = {}
    whole = [DaySlice(start=r.start, end=r.end)]
    if r.dataset is Dataset.ACCESS:
        assert r.subject is not None
        found = access.gather(job.org_id, r.subject, now)
        snapshot["extra"] = found["rows"]
        estimate = found["events"] + len(found["rows"])
        slices = whole
    else:
        month = datasets.metrics_result(job.org_id, r.start, r.end, Granularity.MONTH, now)
        snapshot["month"] = month
        if r.dataset is Dataset.EVENTS:
            counts = datasets.day_counts(job.org_id, r.start, r.end, r.filters, now)
            estimate = sum(counts.values())
            slices = cut(counts, r.start, r.end)
            limit = get_settings().export_xlsx_max_rows
            if r.format is Format.XLSX and estimate > limit:
                raise ExportFailed(
                    f"about {estimate:,} rows match, more than the {limit:,} an Excel export "
                    "can hold and render in one go; ask for CSV or NDJSON (gzip keeps it "
                    "small), or a shorter range"
                )
        else:
            result = (
                month
                if r.dataset is Dataset.SUMMARY
                else datasets.metrics_result(job.org_id, r.start, r.end, r.granularity, now)
            )
            snapshot["dataset"] = result
            estimate = sum(1 for _ in datasets.metric_rows(result, r.dataset is Dataset.SUMMARY))
            slices = whole
    key = f"{work_prefix(job)}snapshot-{secrets.token_hex(4)}.json"
    files().put_json(key, snapshot)
    planned = Plan(as_of=int(now), estimated_rows=estimate, slices=slices, snapshot=key)
    if not jobs.start(job, planned, now):
        current = jobs.find(job.org_id, job.export_id)
        if current is None or current.status is not Status.RUNNING or current.plan is None:
            return None
        return current  # another worker planned it first: follow its plan
    logger.info("export planned", extra={"slices": len(slices), "estimated_rows": estimate})
    return jobs.find(job.org_id, job.export_id)


def snapshot(job: jobs.Job) -> dict[str, Any]:
    """The figures planning saved for this job."""
    assert job.plan is not None
    loaded: dict[str, Any] = files().read_json(job.plan.snapshot)
    return loaded
