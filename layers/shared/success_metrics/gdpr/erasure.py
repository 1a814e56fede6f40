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

The job record is the receipt: the kind of subject, a keyed hash of its id (the same as the
suppression list's, which differs by kind), when it was requested, started and finished, and each
system's outcome and counts. While it runs the id and the collected ids are kept KMS-encrypted in
the record; they are removed when it finishes. The SQS message carries only the organization and
job ids.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from success_metrics import aws, secret_box
from success_metrics.errors import NotFoundError, ValidationFailedError
from success_metrics.exports.models import ACTIVE, Dataset, Status
from success_metrics.gdpr import checked_id
from success_metrics.metrics.contributions import clean, contribution
from success_metrics.models.organizations import Organization
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import claims as claims_store
from success_metrics.stores import destinations, organizations, rate_limit, suppression
from success_metrics.stores import events as events_store
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import privacy as privacy_store
from success_metrics.stores.mentions import MentionStore
from success_metrics.stores.suppression import Identity, Kind
from success_metrics.sync import delivery_log, privacy

STEPS = ("events", "consent", "deliveries", "references", "exports", "mixpanel", "ga4")
SYSTEMS = ("suppression", "events", "metric_claims", *STEPS[1:])
ERASED = "[erased]"
PAGE = 100

SystemStatus = Literal["pending", "running", "done", "not_configured", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "needs_attention"]


class SystemProgress(BaseModel):
    status: SystemStatus = "pending"
    count: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Erasure(BaseModel):
    """The job record, and once finished the receipt (it never holds the id in clear)."""

    erasure_id: str
    org_id: str
    key_id: str
    status: JobStatus = "queued"
    subject_kind: Kind = "user"
    subject_hash: str
    requested_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    step: str = STEPS[0]
    cursor: dict[str, Any] = Field(default_factory=dict)
    systems: dict[str, SystemProgress] = Field(
        default_factory=lambda: {name: SystemProgress() for name in SYSTEMS}
    )
    version: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "status": self.status,
            "subject_kind": self.subject_kind,
            "subject_hash": self.subject_hash,
            "requested_at": _iso(self.requested_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "step": None if self.finished_at else self.step,
            "systems": {
                name: {
                    **progress.model_dump(exclude={"started_at", "finished_at"}),
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


class RetryLater(Exception):
    """A platform is failing in a retryable way: let SQS deliver the job again later."""


class Stale(Exception):
    """Another worker saved this job meanwhile; this one stops."""


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def new_erasure_id(now: float) -> str:
    return f"era_{int(now * 1000):012x}{secrets.token_hex(5)}"


# ------------------------------------------------------------------ storage


def _load(org_id: str, erasure_id: str) -> tuple[Erasure, str | None]:
    record = privacy_store.load_job(org_id, erasure_id)
    if record is None or record.expires_at <= time.time():
        raise NotFoundError(f"erasure {erasure_id} does not exist")
    return Erasure.model_validate_json(record.doc), record.subject


def get(org_id: str, erasure_id: str) -> Erasure:
    return _load(org_id, erasure_id)[0]


def _save(job: Erasure, subject: Subject | None, retention_days: int, now: float) -> Erasure:
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
        erasure_id=new_erasure_id(now),
        org_id=org.org_id,
        key_id=key_id,
        subject_kind=kind,
        subject_hash=digest,
        requested_at=now,
        updated_at=now,
    )
    suppression.add(org, digest, job.erasure_id, now)
    job.systems["suppression"] = SystemProgress(
        status="done", count=1, started_at=now, finished_at=now
    )
    anonymous = [subject_id] if kind == "anonymous" else []
    subject = Subject(user=subject_id, kind=kind, anonymous_ids=anonymous)
    job = _save(job, subject, org.retention_days, now)
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


class _Run:
    """One invocation's work on one job: runs steps until done, out of time, or told to wait."""

    def __init__(
        self,
        org: Organization,
        job: Erasure,
        subject: Subject,
        remaining_ms: Callable[[], int],
        last_attempt: bool,
    ) -> None:
        self.org = org
        self.job = job
        self.subject = subject
        self.remaining_ms = remaining_ms
        self.last_attempt = last_attempt
        self.key = organizations.pseudonym_key(org)

    # -- bookkeeping

    def save(self) -> None:
        self.job = _save(self.job, self.subject, self.org.retention_days, time.time())

    def system(self, name: str) -> SystemProgress:
        progress = self.job.systems[name]
        if progress.status == "pending":
            progress.status = "running"
            progress.started_at = time.time()
        return progress

    def finish_system(self, name: str, status: SystemStatus = "done") -> None:
        progress = self.system(name)
        progress.status = status
        progress.finished_at = time.time()

    def out_of_time(self) -> bool:
        return self.remaining_ms() < get_settings().gdpr_handover_ms

    # -- needles: every form of the subject's ids that other data may hold

    def identities(self) -> set[Identity]:
        return self.subject.identities(self.key)

    def needles(self) -> set[str]:
        return {value for _, value in self.identities()}

    def run(self) -> bool:
        """True when the job finished; False when it handed over to a fresh invocation."""
        if self.job.started_at is None:
            self.job.started_at = time.time()
            self.job.status = "running"
            self.save()
        while self.job.step != "finished":
            step: Callable[[], bool] = getattr(self, f"step_{self.job.step}")
            if not step():
                return False
            index = STEPS.index(self.job.step)
            self.job.step = STEPS[index + 1] if index + 1 < len(STEPS) else "finished"
            self.job.cursor = {}
            self.save()
        return True

    # -- 1. events and their metric claims

    def step_events(self) -> bool:
        """The events the index lists; `events` and `metric_claims` are finished by the
        references scan, which deletes any other event of the subject it finds."""
        self.system("events")
        self.system("metric_claims")
        cursor = self.job.cursor
        while True:
            actors = self.subject.actors()
            index = int(cursor.get("actor", 0))
            if index >= len(actors):
                break
            page = list(_user_keys(self.org.org_id, actors[index], cursor.get("after"), PAGE))
            if not page:
                cursor = {"actor": index + 1}
                self.job.cursor = cursor
                continue
            docs = events_store.read_documents(self.org.org_id, (_event_id(k) for _, k in page))
            self._erase([d for d in docs if self.subject.owns(d)])
            cursor = {"actor": index, "after": page[-1][0]}
            self.job.cursor = cursor
            self.save()
            if self.out_of_time():
                return False
        if self.subject.kind == "user":
            user = clean(self.subject.user, 128)
            self.job.systems["metric_claims"].count += claims_store.delete_existing(
                self.org.org_id, [f"once|converted|{user}"]
            )
        # The other ids, and the pseudonyms anonymised deliveries carry, are suppressed too
        # (each under its kind): a delivery queued before the erasure never sends the
        # subject's events afterwards.
        for kind, value in sorted(self.identities() - {(self.subject.kind, self.subject.user)}):
            suppression.add(
                self.org,
                suppression.subject_hash(self.org, value, kind),
                self.job.erasure_id,
                time.time(),
            )
        return True

    def _erase(self, docs: list[dict[str, Any]], discover: bool = True) -> None:
        """Delete these events of the subject with their metric claims, noting on the way
        the ids the platforms knew them by (saved first: once deleted they cannot be read
        again). Counted as read, not as index keys: an index page may still list an item
        already deleted (by an interrupted run), and that one is not deleted twice."""
        if not docs:
            return
        before = self.subject.model_copy(deep=True)
        for doc in docs:
            self._learn(doc, discover)
        if self.subject != before:
            self.save()
        claims = self.job.systems["metric_claims"]
        claims.count += claims_store.delete_existing(self.org.org_id, self._claim_keys(docs))
        events_store.delete(self.org.org_id, (str(d["id"]) for d in docs))
        # Their entries in the mention index name their ids (which may hold the subject's).
        self.mention_index().forget_events(docs)
        self.job.systems["events"].count += len(docs)

    def _learn(self, doc: dict[str, Any], discover: bool = True) -> None:
        """Note the ids each platform received for this event and, while `discover`, the
        anonymous ids of a user (the references scan looks for the ids known when it starts).
        For an anonymous id, only what the platforms keyed by it: Mixpanel's device id and
        GA4's client id, never the user id an event may also carry."""
        from success_metrics.sync import platforms  # not at import: it brings httpx

        subject = self.subject
        anonymous = doc.get("anonymous_id")
        if discover and anonymous and anonymous not in subject.anonymous_ids:
            subject.anonymous_ids.append(str(anonymous))
        sent = privacy.outbound(
            doc,
            self.key,
            analytics=False,
            anonymise_all=self.org.anonymise_all,
            anonymise_unknown=self.org.anonymise_unknown_country,
        )
        assert sent is not None
        forms = []
        if sent.get("user_id") and subject.kind == "user":
            forms.append(str(sent["user_id"]))
            _add(subject.ga4_user_ids, str(sent["user_id"]))
        if sent.get("anonymous_id"):
            forms.append(f"$device:{sent['anonymous_id']}")
        for form in forms:
            _add(subject.mixpanel_ids, form)
        _add(subject.ga4_client_ids, platforms.ga4_client_id(sent))

    def _claim_keys(self, docs: list[dict[str, Any]]) -> list[str]:
        """Each event's own claim and, for a user, the per-user claims (`once|signup|<user>`,
        `dist|…|active|<user>`…). Claims name user ids only: an anonymous id's events with a
        user id keep that user's claims."""
        users = {clean(u, 128) for u in self.subject.user_ids()}
        keys = []
        for doc in docs:
            keys.append(f"event|{doc['id']}")
            keys += [t.key for t in contribution(doc).tokens if users & set(t.key.split("|"))]
        return keys

    # -- 2. consent

    def step_consent(self) -> bool:
        progress = self.system("consent")
        for raw in self.subject.raw_ids():
            progress.count += privacy_store.delete_partition(f"{self.org.org_id}#{raw}")
        self.finish_system("consent")
        return True

    # -- 3. delivery-log payloads

    def step_deliveries(self) -> bool:

        identities = self.identities()
        needles = self.needles()
        progress = self.system("deliveries")
        progress.count += delivery_log.scrub_payloads(
            self.org.org_id, lambda docs: _scrub_docs(docs, identities, needles)
        )
        self.finish_system("deliveries")
        return True

    # -- 4. other events that mention the subject (and the subject's own the index missed)

    def step_references(self) -> bool:
        """Through the mention index, one key per id of the subject (as stored and as
        pseudonymised): other events that mention it are scrubbed, the subject's own that
        the per-user index does not list are deleted, and the entries go. Resumable: the
        cursor is the id's position and the last event id of the page done."""
        identities = self.identities()
        needles = sorted(self.needles())
        progress = self.system("references")
        index = self.mention_index()
        cursor = self.job.cursor
        while int(cursor.get("needle", 0)) < len(needles):
            needle = needles[int(cursor.get("needle", 0))]
            start = cursor.get("after")  # (a job begun before the index had a scan's key)
            ids, after = index.page(needle, start if isinstance(start, str) else None, PAGE)
            own = []
            for doc in events_store.read_documents(self.org.org_id, ids):
                if self.subject.owns(doc):
                    own.append(doc)
                    continue
                cleaned = _scrub_event(doc, identities, set(needles))
                if cleaned != doc:
                    events_store.rewrite_body(self.org.org_id, cleaned)
                    progress.count += 1
            self._erase(own, discover=False)
            index.forget(needle, ids)
            if after is None:
                cursor = {"needle": int(cursor.get("needle", 0)) + 1}
            else:
                cursor = {"needle": int(cursor.get("needle", 0)), "after": after}
            self.job.cursor = cursor
            self.save()
            if self.out_of_time():
                return False
        for name in ("events", "metric_claims"):
            if self.job.systems[name].status != "done":
                self.finish_system(name)
        self.finish_system("references")
        return True

    def mention_index(self) -> MentionStore:
        return MentionStore.of(self.org)

    # -- 5. export files

    def step_exports(self) -> bool:
        # two modules are named worker: each imported where it is used
        from success_metrics.exports import worker

        progress = self.system("exports")
        now = time.time()
        for listed in jobs.every_job(self.org.org_id):
            request = listed.request
            mine = request.dataset is Dataset.ACCESS and request.subject in self.subject.user_ids()
            if request.dataset is not Dataset.EVENTS and not mine:
                continue
            export = listed
            if listed.status in ACTIVE:
                jobs.cancel(listed, now)
                export = jobs.get(listed.org_id, listed.export_id)
            if export.status is Status.SUCCEEDED and not export.links_revoked:
                jobs.revoke_links(export)
            worker.cleanup(export, keep_file=False)
            if mine:
                jobs.delete(export)
            progress.count += 1
        self.finish_system("exports")
        return True

    # -- 6. analytics platforms

    def step_mixpanel(self) -> bool:
        return self._platform("mixpanel", self._mixpanel)

    def step_ga4(self) -> bool:
        return self._platform("ga4", self._ga4)

    def _platform(self, kind: str, send: Callable[[Any, dict[str, Any]], None]) -> bool:
        progress = self.system(kind)
        targets = [d for d in destinations.list_all(self.org.org_id) if d.kind == kind]
        for dest in targets:
            detail = progress.detail.setdefault(dest.dest_id, {"status": "pending"})
            if detail["status"] in ("done", "failed", "not_configured"):
                continue
            send(dest, detail)
            self.save()
        statuses = {d["status"] for d in progress.detail.values()}
        status: SystemStatus = "done"
        if "failed" in statuses:
            status = "failed"
        elif "not_configured" in statuses:
            status = "not_configured"
        progress.count = sum(int(d.get("requests", 0)) for d in progress.detail.values())
        progress.error = (
            "; ".join(
                f"{dest}: {d['error']}" for dest, d in progress.detail.items() if d.get("error")
            )
            or None
        )
        self.finish_system(kind, status)
        return True

    def _settle(self, detail: dict[str, Any], outcome: Any) -> bool:
        """Record a platform answer; False when the destination is finished (failed)."""
        from success_metrics.sync import platforms  # not at import: it brings httpx

        if outcome.retryable:
            if not self.last_attempt:
                detail["error"] = outcome.error
                raise RetryLater(outcome.error or "retryable failure")
            outcome = platforms.Outcome(outcome.status, error=outcome.error)
        if outcome.error:
            detail.update(status="failed", error=outcome.error)
            return False
        return True

    def _mixpanel(self, dest: Any, detail: dict[str, Any]) -> None:
        # brings httpx: loaded only when a platform is called (cold start)
        from success_metrics.sync import deletions, worker

        values = destinations.secrets(dest)
        if not values.get("gdpr_token"):
            detail.update(
                status="not_configured",
                error="no gdpr_token: set the project's GDPR OAuth token on the destination, "
                "or delete the user in Mixpanel's privacy settings",
            )
            return
        settings = get_settings()
        base = (
            settings.mixpanel_eu_gdpr_api_url
            if dest.public.get("region") == "eu"
            else settings.mixpanel_gdpr_api_url
        )
        ids = sorted(self.subject.mixpanel_ids)
        done = int(detail.get("sent_ids", 0))
        tasks: list[str] = detail.setdefault("task_ids", [])
        for ids_batch in deletions.id_batches(ids[done:]):
            answer: dict[str, str | None] = {}

            def send(
                ids_batch: list[str] = ids_batch, answer: dict[str, str | None] = answer
            ) -> Any:
                outcome, answer["task"] = deletions.mixpanel_delete(
                    worker.client(), base, values["project_token"], values["gdpr_token"], ids_batch
                )
                return outcome

            outcome = self._guard(dest, send)
            if not self._settle(detail, outcome):
                return
            if answer.get("task"):
                tasks.append(str(answer["task"]))
            detail["sent_ids"] = done = done + len(ids_batch)
            detail["requests"] = int(detail.get("requests", 0)) + 1
        detail.update(status="done", error=None)

    def _ga4(self, dest: Any, detail: dict[str, Any]) -> None:
        # brings httpx: loaded only when a platform is called (cold start)
        from success_metrics.sync import deletions, worker

        values = destinations.secrets(dest)
        property_id = dest.public.get("property_id")
        client_id = dest.public.get("oauth_client_id")
        if not (
            property_id
            and client_id
            and values.get("oauth_client_secret")
            and values.get("oauth_refresh_token")
        ):
            detail.update(
                status="not_configured",
                error="set property_id and the OAuth client and refresh token (scope "
                "analytics.user.deletion) on the destination, or delete the user in GA4",
            )
            return
        settings = get_settings()
        token: dict[str, str | None] = {}

        def fetch_token() -> Any:
            outcome, token["value"] = deletions.google_access_token(
                worker.client(), settings.google_oauth_token_url, values, str(client_id)
            )
            return outcome

        if not self._settle(detail, self._guard(dest, fetch_token)):
            return
        access = str(token["value"])
        wanted = [("USER_ID", u) for u in sorted(self.subject.ga4_user_ids)] + [
            ("CLIENT_ID", c) for c in sorted(self.subject.ga4_client_ids)
        ]
        done = int(detail.get("sent_ids", 0))
        for id_type, value in wanted[done:]:

            def send(id_type: str = id_type, value: str = value) -> Any:
                return deletions.ga4_delete(
                    worker.client(),
                    settings.ga4_user_deletion_api_url,
                    access,
                    str(property_id),
                    id_type,
                    value,
                )

            outcome = self._guard(dest, send)
            if not self._settle(detail, outcome):
                return
            detail["sent_ids"] = done = done + 1
            detail["requests"] = int(detail.get("requests", 0)) + 1
        detail.update(status="done", error=None)

    def _guard(self, dest: Any, send: Callable[[], Any]) -> Any:
        # this Powertools utility loads when first used (cold start)
        from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError

        # brings httpx, and exports has a worker too: imported where it is used
        from success_metrics.sync import platforms, worker

        try:
            return worker.guarded(dest, send)
        except CircuitBreakerOpenError:
            return platforms.Outcome(None, retryable=True, error="circuit breaker open")

    # -- the end

    def complete(self) -> None:
        gaps = [
            name
            for name, progress in self.job.systems.items()
            if progress.status in ("failed", "not_configured")
        ]
        self.job.status = "needs_attention" if gaps else "succeeded"
        self.job.finished_at = time.time()
        # The receipt keeps no id: the encrypted subject is dropped with this write.
        self.job = _save(self.job, None, self.org.retention_days, time.time())
        metrics.add_metric(name="ErasuresCompleted", unit=MetricUnit.Count, value=1)
        logger.info(
            "erasure finished",
            extra={"erasure_id": self.job.erasure_id, "status": self.job.status, "gaps": gaps},
        )


def work(org_id: str, erasure_id: str, remaining_ms: Callable[[], int], receive_count: int) -> str:
    """Work on one job; returns "finished", "handed over", "waiting" or "nothing to do".

    Raises RetryLater when a platform keeps failing (SQS delivers the job again later)."""
    try:
        job, sealed = _load(org_id, erasure_id)
    except NotFoundError:
        logger.warning("erasure record not found", extra={"erasure_id": erasure_id})
        return "nothing to do"
    if job.finished_at is not None or sealed is None:
        return "nothing to do"
    org = organizations.get_organization(org_id, fresh=True)
    subject = Subject.model_validate_json(secret_box.open_large(sealed, org_id))
    last = receive_count >= get_settings().gdpr_attempts
    run = _Run(org, job, subject, remaining_ms, last)
    try:
        if not run.run():
            _enqueue(run.job)
            return "handed over"
        run.complete()
    except RetryLater:
        run.save()
        return "waiting"
    except Stale:
        return "nothing to do"
    return "finished"


# ------------------------------------------------------------------ table helpers


def _event_id(key: dict[str, Any]) -> str:
    """The event id of an events-table key (`<org>#<event id>`)."""
    return str(key["pk"]["S"]).split("#", 1)[1]


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def _user_keys(
    org_id: str, actor: str, after: str | None, limit: int
) -> Iterator[tuple[str, dict[str, Any]]]:

    keys = events_store.user_event_keys(org_id, actor, after)
    for _ in range(limit):
        found = next(keys, None)
        if found is None:
            return
        yield found


def _scrub(value: Any, needles: set[str]) -> Any:
    """`value` with every string equal to one of `needles` replaced by "[erased]"."""
    if isinstance(value, str):
        return ERASED if value in needles else value
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, needles) for k, v in value.items()}
    return value


def _scrub_event(
    doc: dict[str, Any], identities: set[Identity], needles: set[str]
) -> dict[str, Any]:
    """Another event with its mentions of the subject erased. Its own ids by kind: the user
    "x" is not a mention of the anonymous id "x"; anywhere else (properties) any form is."""
    fields = suppression.FIELDS
    cleaned = {k: v if k in fields.values() else _scrub(v, needles) for k, v in doc.items()}
    for kind, name in fields.items():
        if doc.get(name) and (kind, str(doc[name])) in identities:
            cleaned[name] = ERASED
    return cleaned


def _scrub_docs(
    docs: list[dict[str, Any]], identities: set[Identity], needles: set[str]
) -> list[dict[str, Any]]:
    """A payload's events without the subject's own (those carrying one of its `identities`),
    and with mentions of the subject erased."""
    kept = [d for d in docs if not identities.intersection(suppression.identities(d))]
    return [_scrub_event(d, identities, needles) for d in kept]
