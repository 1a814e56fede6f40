"""Export jobs in the exports table: one item per job, plus one slot item per organization.

Item `pk = org#<org>`, `sk = job#<export id>` (ids sort by creation time, so listing newest
first is one reversed query). Each slice of a job keeps its checkpoint in the `slices` map
(`slices.<n>`), updated with a per-slice sequence number: two workers that somehow run the same
slice cannot both advance it, and every save also requires the job to still be running, which
is how a cancellation reaches a worker at its next checkpoint.

The slot item (`sk = slots`) holds the ids of the organization's queued and running exports in a
string set; a conditional `ADD` on its size caps them atomically across all instances.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.errors import NotFoundError, RateLimitedError, ValidationFailedError
from success_metrics.exports.models import (
    ACTIVE,
    Checkpoint,
    ExportFile,
    ExportRequest,
    Plan,
    SliceResult,
    Status,
)
from success_metrics.settings import get_settings
from success_metrics.stores import items

# Job records outlive their file so the history stays visible for a while.
RECORD_DAYS = 90
# An active job that has not moved for this long no longer holds a slot.
STALE_SLOT_SECONDS = 6 * 3600


def _table() -> str:
    return get_settings().exports_table


def new_export_id(now: float) -> str:
    """`exp_` + 12 hex digits of milliseconds + 10 random: unique and time-ordered."""
    return f"exp_{int(now * 1000):012x}{secrets.token_hex(5)}"


def _key(org_id: str, export_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"org#{org_id}"}, "sk": {"S": f"job#{export_id}"}}


@dataclass
class SliceState:
    """One slice's progress: where it is, what it has uploaded, whether it is finished."""

    seq: int = 0
    checkpoint: Checkpoint | None = None
    done: SliceResult | None = None

    @property
    def rows(self) -> int:
        if self.done is not None:
            return self.done.rows
        return self.checkpoint.rows if self.checkpoint else 0

    @property
    def bytes(self) -> int:
        if self.done is not None:
            return self.done.bytes
        return self.checkpoint.bytes if self.checkpoint else 0


@dataclass
class Job:
    org_id: str
    export_id: str
    key_id: str
    request: ExportRequest
    status: Status
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    plan: Plan | None = None
    slices: dict[int, SliceState] = field(default_factory=dict)
    file: ExportFile | None = None
    final_upload: str | None = None
    notified: bool = False
    link_version: int = 1
    links_revoked: bool = False

    @property
    def rows(self) -> int:
        if self.file:
            return self.file.rows
        return sum(s.rows for s in self.slices.values())

    @property
    def bytes(self) -> int:
        if self.file:
            return self.file.bytes
        return sum(s.bytes for s in self.slices.values())

    @property
    def estimated_rows(self) -> int | None:
        return self.plan.estimated_rows if self.plan else None

    def slice(self, index: int) -> SliceState:
        return self.slices.get(index) or SliceState()


def _from_item(item: dict[str, Any]) -> Job:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    slices = {}
    for index, value in item.get("slices", {}).get("M", {}).items():
        state = value["M"]
        slices[int(index)] = SliceState(
            seq=int(state["seq"]["N"]),
            checkpoint=Checkpoint.model_validate_json(state["cp"]["S"]) if "cp" in state else None,
            done=SliceResult.model_validate_json(state["done"]["S"]) if "done" in state else None,
        )
    return Job(
        org_id=item["org_id"]["S"],
        export_id=item["export_id"]["S"],
        key_id=item["key_id"]["S"],
        request=ExportRequest.model_validate_json(item["request"]["S"]),
        status=Status(item["status"]["S"]),
        created_at=float(item["created_at"]["N"]),
        updated_at=float(item["updated_at"]["N"]),
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        error=text("error"),
        plan=Plan.model_validate_json(item["plan"]["S"]) if "plan" in item else None,
        slices=slices,
        file=ExportFile.model_validate_json(item["file"]["S"]) if "file" in item else None,
        final_upload=text("final_upload"),
        notified=item.get("notified", {}).get("BOOL", False),
        link_version=int(item.get("link_version", {}).get("N", "1")),
        links_revoked=item.get("links_revoked", {}).get("BOOL", False),
    )


# ------------------------------------------------------------------ slots


def _slots_key(org_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"org#{org_id}"}, "sk": {"S": "slots"}}


def claim_slot(org_id: str, export_id: str, cap: int, now: float) -> None:
    """Hold one of the organization's `cap` export slots, or raise 429."""
    for attempt in range(2):
        try:
            aws.dynamodb().update_item(
                TableName=_table(),
                Key=_slots_key(org_id),
                UpdateExpression="ADD active :id",
                ConditionExpression="attribute_not_exists(active) OR size(active) < :cap",
                ExpressionAttributeValues={
                    ":id": {"SS": [export_id]},
                    ":cap": {"N": str(cap)},
                },
            )
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        if attempt == 0 and not _release_stale(org_id, now):
            break
    error = RateLimitedError(
        f"this organization already has {cap} exports queued or running; "
        "wait for one to finish or cancel one"
    )
    error.headers = {"Retry-After": "60"}
    raise error


def release_slot(org_id: str, export_id: str) -> None:
    aws.dynamodb().update_item(
        TableName=_table(),
        Key=_slots_key(org_id),
        UpdateExpression="DELETE active :id",
        ExpressionAttributeValues={":id": {"SS": [export_id]}},
    )


def _release_stale(org_id: str, now: float) -> bool:
    """Free slots whose job has finished or stopped moving (a worker lost for good)."""
    item = aws.dynamodb().get_item(TableName=_table(), Key=_slots_key(org_id)).get("Item", {})
    freed = False
    for export_id in item.get("active", {}).get("SS", []):
        job = find(org_id, export_id)
        if job is None or job.status not in ACTIVE or now - job.updated_at > STALE_SLOT_SECONDS:
            release_slot(org_id, export_id)
            freed = True
    return freed


# ------------------------------------------------------------------ create and read


def create(
    org_id: str,
    key_id: str,
    request: ExportRequest,
    export_id: str,
    now: float,
    retention_days: int = RECORD_DAYS,
) -> Job:
    """Record a queued job; the record lasts RECORD_DAYS, or the organization's retention when
    that is shorter (it names the notified addresses, and an access request's user)."""
    job = Job(
        org_id=org_id,
        export_id=export_id,
        key_id=key_id,
        request=request,
        status=Status.QUEUED,
        created_at=now,
        updated_at=now,
    )
    aws.dynamodb().put_item(
        TableName=_table(),
        Item={
            **_key(org_id, export_id),
            "org_id": {"S": org_id},
            "export_id": {"S": export_id},
            "key_id": {"S": key_id},
            "request": {"S": request.model_dump_json(by_alias=True)},
            "status": {"S": Status.QUEUED.value},
            "created_at": {"N": repr(now)},
            "updated_at": {"N": repr(now)},
            "slices": {"M": {}},
            "link_version": {"N": "1"},
            "expires_at": {"N": str(int(now) + min(RECORD_DAYS, retention_days) * 86400)},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    return job


def find(org_id: str, export_id: str) -> Job | None:
    item = (
        aws.dynamodb()
        .get_item(TableName=_table(), Key=_key(org_id, export_id), ConsistentRead=True)
        .get("Item")
    )
    if item is None or int(item.get("expires_at", {}).get("N", "0")) <= time.time():
        return None  # past its retention: TTL may not have removed it yet
    return _from_item(item)


def get(org_id: str, export_id: str) -> Job:
    """The organization's job, or 404 (another organization's id is simply not found)."""
    if not export_id.startswith("exp_") or len(export_id) > 40:
        raise NotFoundError(f"no export {export_id!r}")
    job = find(org_id, export_id)
    if job is None:
        raise NotFoundError(f"no export {export_id!r}")
    return job


def list_jobs(org_id: str, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :job)",
        "FilterExpression": "expires_at > :now",
        "ExpressionAttributeValues": {
            ":pk": {"S": f"org#{org_id}"},
            ":job": {"S": "job#"},
            ":now": {"N": str(int(time.time()))},
        },
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
        except ValueError as exc:
            raise ValidationFailedError("cursor is not one this API returned") from exc
        if not after.startswith("exp_"):
            raise ValidationFailedError("cursor is not one this API returned")
        request["ExclusiveStartKey"] = _key(org_id, after)
    page = aws.dynamodb().query(**request)
    jobs = [_from_item(item) for item in page["Items"]]
    next_cursor = None
    if "LastEvaluatedKey" in page and jobs:
        next_cursor = base64.urlsafe_b64encode(jobs[-1].export_id.encode()).decode().rstrip("=")
    return jobs, next_cursor


# ------------------------------------------------------------------ transitions


def _update(
    job: Job,
    expression: str,
    values: dict[str, Any],
    condition: str,
    names: dict[str, str] | None = None,
) -> bool:
    """A conditional update of the job; False when the condition did not hold."""
    assert expression.startswith("SET ")
    request: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(job.org_id, job.export_id),
        "UpdateExpression": "SET updated_at = :updated, " + expression[4:],
        "ConditionExpression": condition,
        "ExpressionAttributeValues": {**values, ":updated": {"N": repr(time.time())}},
    }
    used = {"#status": "status", **(names or {})}
    text = request["UpdateExpression"] + " " + condition
    if any(name in text for name in used):
        request["ExpressionAttributeNames"] = {k: v for k, v in used.items() if k in text}
    try:
        aws.dynamodb().update_item(**request)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def start(job: Job, plan: Plan, now: float) -> bool:
    """queued -> running with its plan; False if it was cancelled (or planned) meanwhile."""
    return _update(
        job,
        "SET #status = :running, started_at = :now, #plan = :plan",
        {
            ":running": {"S": Status.RUNNING.value},
            ":queued": {"S": Status.QUEUED.value},
            ":now": {"N": repr(now)},
            ":plan": {"S": plan.model_dump_json(by_alias=True)},
        },
        "#status = :queued",
        {"#plan": "plan"},
    )


def save_checkpoint(job: Job, index: int, checkpoint: Checkpoint, seq: int) -> bool:
    """Record a slice's checkpoint if the job still runs and nobody else moved the slice."""
    slot = str(index)
    state = {
        "seq": {"N": str(seq + 1)},
        "cp": {"S": checkpoint.model_dump_json()},
    }
    condition, values = _slice_guard(seq)
    values[":state"] = {"M": state}
    return _update(job, "SET slices.#n = :state", values, condition, {"#n": slot})


def _slice_guard(seq: int) -> tuple[str, dict[str, Any]]:
    """The condition of every slice write: the job runs and the slice is still at `seq`."""
    values: dict[str, Any] = {":running": {"S": Status.RUNNING.value}}
    if seq == 0:
        return "#status = :running AND attribute_not_exists(slices.#n)", values
    values[":seq"] = {"N": str(seq)}
    return "#status = :running AND slices.#n.seq = :seq", values


def finish_slice(job: Job, index: int, result: SliceResult, seq: int) -> int | None:
    """Mark a slice done; the number of done slices, or None if the slice was not ours."""
    slot = str(index)
    condition, values = _slice_guard(seq)
    values[":state"] = {
        "M": {
            "seq": {"N": str(seq + 1)},
            "done": {"S": result.model_dump_json()},
        }
    }
    values[":one"] = {"N": "1"}
    try:
        answer = aws.dynamodb().update_item(
            TableName=_table(),
            Key=_key(job.org_id, job.export_id),
            UpdateExpression="SET slices.#n = :state, updated_at = :updated ADD slices_done :one",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status", "#n": slot},
            ExpressionAttributeValues={**values, ":updated": {"N": repr(time.time())}},
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise
    return int(answer["Attributes"]["slices_done"]["N"])


def set_final_upload(job: Job, upload_id: str) -> bool:
    return _update(
        job,
        "SET final_upload = :id",
        {":id": {"S": upload_id}, ":running": {"S": Status.RUNNING.value}},
        "#status = :running",
    )


def succeed(job: Job, file: ExportFile, now: float) -> bool:
    done = _update(
        job,
        "SET #status = :done, finished_at = :now, #file = :file REMOVE final_upload",
        {
            ":done": {"S": Status.SUCCEEDED.value},
            ":running": {"S": Status.RUNNING.value},
            ":now": {"N": repr(now)},
            ":file": {"S": file.model_dump_json()},
        },
        "#status = :running",
        {"#file": "file"},
    )
    if done:
        release_slot(job.org_id, job.export_id)
    return done


def mark_notified(job: Job) -> None:
    _update(job, "SET notified = :yes", {":yes": {"BOOL": True}}, "attribute_exists(pk)")


def fail(job: Job, error: str, now: float) -> bool:
    done = _update(
        job,
        "SET #status = :failed, finished_at = :now, #error = :error",
        {
            ":failed": {"S": Status.FAILED.value},
            ":now": {"N": repr(now)},
            ":error": {"S": error[:1000]},
            ":queued": {"S": Status.QUEUED.value},
            ":running": {"S": Status.RUNNING.value},
        },
        "#status IN (:queued, :running)",
        {"#error": "error"},
    )
    if done:
        release_slot(job.org_id, job.export_id)
    return done


def cancel(job: Job, now: float) -> bool:
    """queued or running -> cancelled; workers notice at their next checkpoint."""
    done = _update(
        job,
        "SET #status = :cancelled, finished_at = :now",
        {
            ":cancelled": {"S": Status.CANCELLED.value},
            ":now": {"N": repr(now)},
            ":queued": {"S": Status.QUEUED.value},
            ":running": {"S": Status.RUNNING.value},
        },
        "#status IN (:queued, :running)",
    )
    if done:
        release_slot(job.org_id, job.export_id)
    return done


def revoke_links(job: Job) -> None:
    """Every emailed link of a finished export stops working (their version no longer matches)."""
    _update(
        job,
        "SET links_revoked = :yes ADD link_version :one",
        {":yes": {"BOOL": True}, ":one": {"N": "1"}},
        "attribute_exists(pk)",
    )


def every_job(org_id: str) -> Iterator[Job]:
    """Every job record of the organization, expired or not (GDPR erasure goes through all)."""
    found = items.every(
        aws.dynamodb(),
        "query",
        TableName=_table(),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
        ExpressionAttributeValues={":pk": {"S": f"org#{org_id}"}, ":job": {"S": "job#"}},
    )
    for item in found:
        yield _from_item(item)


def delete(job: Job) -> None:
    """Remove a job record (an erased user's access request: it names the user)."""
    release_slot(job.org_id, job.export_id)
    aws.dynamodb().delete_item(TableName=_table(), Key=_key(job.org_id, job.export_id))
