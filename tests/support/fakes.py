"""In-memory stand-ins for the stores, with the same methods and the same meaning (keys,
ordering, pages, what a delete of a missing item does), for unit tests of the logic above them:
the erasure steps (`gdpr.steps.Stores`) and the export bucket (`stores.export_files`)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from success_metrics.gdpr.job import Erasure, Subject
from success_metrics.gdpr.steps import Stores
from success_metrics.models.organizations import Organization
from success_metrics.stores.mentions import mentioned
from success_metrics.stores.suppression import Kind


def actor_of(doc: dict[str, Any]) -> str:
    """The `ByUser` key of an event, as the events store writes it."""
    if doc.get("user_id"):
        return str(doc["user_id"])
    return f"anon:{doc['anonymous_id']}"


class FakeEvents:
    """The events table: documents by id, the per-user index ordered by (occurred_at, id)."""

    def __init__(self, docs: Iterable[dict[str, Any]] = ()) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.reads = 0
        for doc in docs:
            self.docs[str(doc["id"])] = copy.deepcopy(doc)

    def user_event_ids(
        self, org_id: str, user: str, after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        keys = sorted(
            (f"{d['occurred_at']}#{d['id']}", d["id"])
            for d in self.docs.values()
            if actor_of(d) == user
        )
        return [(k, i) for k, i in keys if after is None or k > after][:limit]

    def read_documents(self, org_id: str, event_ids: Iterable[str]) -> list[dict[str, Any]]:
        self.reads += 1
        return [copy.deepcopy(self.docs[e]) for e in dict.fromkeys(event_ids) if e in self.docs]

    def delete(self, org_id: str, event_ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(event_ids))
        for event_id in ids:
            self.docs.pop(event_id, None)
        return len(ids)

    def rewrite_body(self, org_id: str, doc: dict[str, Any]) -> None:
        if str(doc["id"]) in self.docs:  # one deleted meanwhile stays deleted
            self.docs[str(doc["id"])] = copy.deepcopy(doc)


class FakeClaims:
    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.keys = set(keys)

    def delete_existing(self, org_id: str, claim_keys: Iterable[str]) -> int:
        found = self.keys & set(claim_keys)
        self.keys -= found
        return len(found)

    def forget_events(self, org_id: str, event_ids: Iterable[str]) -> int:
        """The events' claims in their requests' items: kept here as `events|<event id>`."""
        return self.delete_existing(org_id, (f"events|{e}" for e in event_ids))


class FakeSuppression:
    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def subject_hash(self, org: Organization, value: str, kind: Kind = "user") -> str:
        return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()

    def add(self, org: Organization, digest: str, erasure_id: str, now: float) -> None:
        self.entries[digest] = erasure_id


class FakeConsent:
    def __init__(self, partitions: dict[str, int] | None = None) -> None:
        self.partitions = dict(partitions or {})

    def delete_partition(self, pk: str) -> int:
        return self.partitions.pop(pk, 0)


class FakeMentions:
    """The mention index: value -> event ids, paged in event-id order."""

    def __init__(self, docs: Iterable[dict[str, Any]] = ()) -> None:
        self.index: dict[str, set[str]] = {}
        for doc in docs:
            for value in mentioned(doc):
                self.index.setdefault(value, set()).add(str(doc["id"]))

    def page(self, value: str, after: str | None, limit: int) -> tuple[list[str], str | None]:
        ids = sorted(i for i in self.index.get(value, set()) if after is None or i > after)
        page = ids[:limit]
        return page, (page[-1] if len(ids) > limit else None)

    def forget(self, value: str, event_ids: Iterable[str]) -> int:
        ids = set(event_ids) & self.index.get(value, set())
        self.index.get(value, set()).difference_update(ids)
        return len(ids)

    def forget_events(self, docs: Iterable[dict[str, Any]]) -> int:
        count = 0
        for doc in docs:
            for value in mentioned(doc):
                if str(doc["id"]) in self.index.get(value, set()):
                    self.index[value].discard(str(doc["id"]))
                    count += 1
        return count


@dataclass
class FakeWorld:
    """Every store an erasure step uses, and the saved job records (the last is the one a
    fresh invocation would load)."""

    events: FakeEvents
    claims: FakeClaims = field(default_factory=FakeClaims)
    suppression: FakeSuppression = field(default_factory=FakeSuppression)
    consent: FakeConsent = field(default_factory=FakeConsent)
    mentions: FakeMentions = field(default_factory=FakeMentions)
    saved: list[tuple[Erasure, Subject | None]] = field(default_factory=list)
    crash_on_save: Callable[[int], bool] = lambda attempt: False
    save_attempts: int = 0

    def stores(self) -> Stores:
        return Stores(
            events=self.events,
            claims=self.claims,
            suppression=self.suppression,
            consent=self.consent,
            mentions=lambda org: self.mentions,
        )

    def save(self, job: Erasure, subject: Subject | None, retention: int, now: float) -> Erasure:
        self.save_attempts += 1
        if self.crash_on_save(self.save_attempts):
            raise RuntimeError("the worker died before this save")
        stored = job.model_copy(deep=True, update={"version": job.version + 1})
        self.saved.append((stored, subject.model_copy(deep=True) if subject else None))
        return stored.model_copy(deep=True)


class FakeExportFiles:
    """The export bucket: objects and multipart uploads, with S3's rule that every part but
    the last is at least `min_part` bytes (5 MiB on S3), checked at completion."""

    def __init__(self, min_part: int = 5 * 1024 * 1024) -> None:
        self.min_part = min_part
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.copies = 0
        self._next = 0

    def put(self, key: str, body: bytes, content_type: str | None = None) -> None:
        self.objects[key] = body

    def put_json(self, key: str, value: Any, indent: int | None = None) -> None:
        self.put(key, json.dumps(value, default=str, indent=indent).encode())

    def read_json(self, key: str) -> Any:
        return json.loads(self.objects[key])

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self.objects[key][start:end]

    def lines(self, key: str) -> Iterator[bytes]:
        yield from self.objects[key].splitlines()

    def size(self, key: str) -> int:
        return len(self.objects[key])

    def start_upload(self, key: str, content_type: str) -> str:
        self._next += 1
        upload_id = f"upload-{self._next}"
        self.uploads[upload_id] = {}
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self.uploads[upload_id][number] = data
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def copy_part(
        self, key: str, upload_id: str, number: int, source: str, start: int, end: int
    ) -> str:
        self.copies += 1
        return self.upload_part(key, upload_id, number, self.objects[source][start:end])

    def complete(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = self.uploads.pop(upload_id)
        ordered = [parts[n] for n in sorted(parts)]
        assert len(ordered) == len(etags), "every part's ETag is given, in order"
        for part in ordered[:-1]:
            if len(part) < self.min_part:
                raise ValueError(f"EntityTooSmall: a part of {len(part)} bytes is not the last")
        self.objects[key] = b"".join(ordered)

    def abort(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
