"""The erasure job record (and, once finished, its receipt): its steps, each system's progress,
the resumable cursor, and the subject the worker must know while it runs (kept KMS-encrypted in
the record, dropped when it finishes). Saved with a version check, so two workers never both
advance one job."""

from __future__ import annotations

import secrets
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from success_metrics import secret_box
from success_metrics.errors import NotFoundError
from success_metrics.stores import privacy as privacy_store
from success_metrics.stores.suppression import Identity, Kind
from success_metrics.sync import privacy


class Step(StrEnum):
    """The worker's steps, in order (see `gdpr.erasure`); FINISHED once they are all done."""

    EVENTS = "events"
    CONSENT = "consent"
    DELIVERIES = "deliveries"
    REFERENCES = "references"
    EXPORTS = "exports"
    MIXPANEL = "mixpanel"
    GA4 = "ga4"
    FINISHED = "finished"

    def next(self) -> Step:
        order = list(Step)
        return order[min(order.index(self) + 1, len(order) - 1)]


STEPS = tuple(s.value for s in Step if s is not Step.FINISHED)
# Every system the receipt reports on: the suppression list and metric claims have no step of
# their own (the request and the events step do them).
SYSTEMS = ("suppression", "events", "metric_claims", *STEPS[1:])


class SystemStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    NOT_CONFIGURED = "not_configured"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    NEEDS_ATTENTION = "needs_attention"


FINAL = (SystemStatus.DONE, SystemStatus.FAILED, SystemStatus.NOT_CONFIGURED)


class PlatformDeletion(BaseModel):
    """One analytics destination's part of the erasure: how many of the subject's ids its
    deletion API has been sent (the resume point), the requests made and Mixpanel's task ids."""

    status: SystemStatus = SystemStatus.PENDING
    error: str | None = None
    sent_ids: int = 0
    requests: int = 0
    task_ids: list[str] = Field(default_factory=list)


class SystemProgress(BaseModel):
    status: SystemStatus = SystemStatus.PENDING
    count: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    detail: dict[str, PlatformDeletion] = Field(default_factory=dict)


class Cursor(BaseModel):
    """Where the running step stopped: the index of the actor (events step) or of the id
    (references step) being worked on, and the last key of the page done."""

    actor: int = 0
    needle: int = 0
    after: str | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _scan_keys_restart(cls, value: Any) -> Any:
        # A job saved while erasure still scanned the table holds a scan key here: its step
        # starts its id again (idempotent), through the index.
        return value if value is None or isinstance(value, str) else None


class Erasure(BaseModel):
    """The job record, and once finished the receipt (it never holds the id in clear)."""

    erasure_id: str
    org_id: str
    key_id: str
    status: JobStatus = JobStatus.QUEUED
    subject_kind: Kind = "user"
    subject_hash: str
    requested_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    step: Step = Step.EVENTS
    cursor: Cursor = Field(default_factory=Cursor)
    systems: dict[str, SystemProgress] = Field(
        default_factory=lambda: {name: SystemProgress() for name in SYSTEMS}
    )
    version: int = 0

    def begin(self, name: str, now: float) -> SystemProgress:
        """The system's progress, marked running if it had not started."""
        progress = self.systems[name]
        if progress.status is SystemStatus.PENDING:
            progress.status = SystemStatus.RUNNING
            progress.started_at = now
        return progress

    def finish(self, name: str, now: float, status: SystemStatus = SystemStatus.DONE) -> None:
        progress = self.begin(name, now)
        progress.status = status
        progress.finished_at = now

    def gaps(self) -> list[str]:
        """The systems that did not end done: the receipt says `needs_attention` for them."""
        return [
            name
            for name, progress in self.systems.items()
            if progress.status in (SystemStatus.FAILED, SystemStatus.NOT_CONFIGURED)
        ]

    def view(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "status": self.status.value,
            "subject_kind": self.subject_kind,
            "subject_hash": self.subject_hash,
            "requested_at": _iso(self.requested_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "step": None if self.finished_at else self.step.value,
            "systems": {
                name: {
                    **progress.model_dump(mode="json", exclude={"started_at", "finished_at"}),
                    "started_at": _iso(progress.started_at),
                    "finished_at": _iso(progress.finished_at),
                }
                for name, progress in self.systems.items()
            },
            "links": {"self": f"/v1/gdpr/erasures/{self.erasure_id}"},
        }


class Subject(BaseModel):
    """What the worker must know about the subject while it runs; kept encrypted at rest.

    `user` is the id the erasure names: a user id, or with `kind` "anonymous" an anonymous id
    (then `anonymous_ids` is that id alone)."""

    user: str
    kind: Kind = "user"
    anonymous_ids: list[str] = Field(default_factory=list)
    mixpanel_ids: list[str] = Field(default_factory=list)
    ga4_user_ids: list[str] = Field(default_factory=list)
    ga4_client_ids: list[str] = Field(default_factory=list)

    def user_ids(self) -> list[str]:
        return [self.user] if self.kind == "user" else []

    def raw_ids(self) -> list[str]:
        return [*self.user_ids(), *self.anonymous_ids]

    def actors(self) -> list[str]:
        """The `ByUser` keys of the subject's events."""
        return [*self.user_ids(), *(f"anon:{a}" for a in self.anonymous_ids)]

    def owns(self, doc: dict[str, Any]) -> bool:
        """Whether a stored event is the subject's. A user's: its user id, or no user id and
        one of the user's anonymous ids. An anonymous id's: every event that carries it, with a
        user id or not. (Checked, not assumed from the index key: the user id "anon:x" and the
        anonymous id "x" share one.)"""
        if self.kind == "anonymous":
            return doc.get("anonymous_id") == self.user
        if doc.get("user_id") is not None:
            return doc.get("user_id") == self.user
        return doc.get("anonymous_id") in self.anonymous_ids

    def identities(self, key: bytes) -> set[Identity]:
        """Every (kind, id) the subject's events carry, as stored and as anonymised."""
        ids: set[Identity] = {("user", u) for u in self.user_ids()}
        ids |= {("anonymous", a) for a in self.anonymous_ids}
        return ids | {(kind, privacy.pseudonym(key, value)) for kind, value in ids}


class Stale(Exception):
    """Another worker saved this job meanwhile; this one stops."""


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def new_erasure_id(now: float) -> str:
    return f"era_{int(now * 1000):012x}{secrets.token_hex(5)}"


def load(org_id: str, erasure_id: str) -> tuple[Erasure, str | None]:
    """The job and its sealed subject (None once finished)."""
    record = privacy_store.load_job(org_id, erasure_id)
    if record is None or record.expires_at <= time.time():
        raise NotFoundError(f"erasure {erasure_id} does not exist")
    return Erasure.model_validate_json(record.doc), record.subject


def get(org_id: str, erasure_id: str) -> Erasure:
    return load(org_id, erasure_id)[0]


def open_subject(sealed: str, org_id: str) -> Subject:
    return Subject.model_validate_json(secret_box.open_large(sealed, org_id))


def save(job: Erasure, subject: Subject | None, retention_days: int, now: float) -> Erasure:
    """Write the record if nobody else did since it was read; the subject only while it runs."""
    saved = job.model_copy(update={"version": job.version + 1, "updated_at": now})
    sealed = None
    if subject is not None:
        sealed = secret_box.seal_large(subject.model_dump_json(), job.org_id)
    try:
        privacy_store.save_job(
            job.org_id,
            job.erasure_id,
            saved.model_dump_json(),
            saved.version,
            int(now) + retention_days * 86400,
            sealed,
        )
    except privacy_store.VersionConflict as exc:
        raise Stale(job.erasure_id) from exc
    return saved
