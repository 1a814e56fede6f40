"""The erasure's steps over the system's own data (events and their metric claims, consent,
delivery-log payloads, other events that mention the subject, export files), run by
`gdpr.erasure` in the order of `job.Step`. Each step saves progress after every page of work and
returns False when the invocation is out of time (the next one resumes from the cursor); running
a step twice changes nothing.

The stores a step uses come in a `Stores` bundle: the deployed tables by default, in-memory
fakes in the unit tests (`tests/support/fakes.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from success_metrics import dead_letters
from success_metrics.exports.models import ACTIVE, Dataset, Status
from success_metrics.gdpr import job as job_record
from success_metrics.gdpr.job import Cursor, Erasure, Subject, SystemProgress, SystemStatus
from success_metrics.metrics import funnel, subscriptions
from success_metrics.metrics.contributions import clean, contribution
from success_metrics.models.organizations import Organization
from success_metrics.settings import get_settings
from success_metrics.stores import claims as claims_store
from success_metrics.stores import events as events_store
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores import organizations, suppression
from success_metrics.stores import privacy as privacy_store
from success_metrics.stores.mentions import MentionStore
from success_metrics.stores.suppression import Identity, Kind
from success_metrics.sync import delivery_log, privacy

ERASED = "[erased]"
PAGE = 100

# ------------------------------------------------------------------ the stores a step uses


class EventStore(Protocol):
    def user_event_ids(
        self, org_id: str, user: str, after: str | None, limit: int
    ) -> list[tuple[str, str]]: ...
    def read_documents(self, org_id: str, event_ids: Iterable[str]) -> list[dict[str, Any]]: ...
    def delete(self, org_id: str, event_ids: Iterable[str]) -> int: ...
    def rewrite_body(self, org_id: str, doc: dict[str, Any]) -> None: ...


class ClaimStore(Protocol):
    def delete_existing(self, org_id: str, claim_keys: Iterable[str]) -> int: ...
    def forget_events(self, org_id: str, event_ids: Iterable[str]) -> int: ...


class SuppressionList(Protocol):
    def subject_hash(self, org: Organization, value: str, kind: Kind = "user") -> str: ...
    def add(self, org: Organization, digest: str, erasure_id: str, now: float) -> None: ...


class ConsentStore(Protocol):
    def delete_partition(self, pk: str) -> int: ...


class MentionIndex(Protocol):
    def page(self, value: str, after: str | None, limit: int) -> tuple[list[str], str | None]: ...
    def forget(self, value: str, event_ids: Iterable[str]) -> int: ...
    def forget_events(self, docs: Iterable[dict[str, Any]]) -> int: ...


@dataclass(frozen=True)
class Stores:
    events: EventStore
    claims: ClaimStore
    suppression: SuppressionList
    consent: ConsentStore
    mentions: Callable[[Organization], MentionIndex]

    @classmethod
    def deployed(cls) -> Stores:
        return cls(events_store, claims_store, suppression, privacy_store, MentionStore.of)


Saver = Callable[[Erasure, Subject | None, int, float], Erasure]


class Run:
    """One invocation's work on one job: the job, the subject, the stores, and the clock."""

    def __init__(
        self,
        org: Organization,
        job: Erasure,
        subject: Subject,
        remaining_ms: Callable[[], int],
        last_attempt: bool,
        *,
        stores: Stores | None = None,
        key: bytes | None = None,
        save: Saver | None = None,
        handover_ms: int | None = None,
        page: int | None = None,
    ) -> None:
        self.org = org
        self.job = job
        self.subject = subject
        self.remaining_ms = remaining_ms
        self.last_attempt = last_attempt
        self.stores = stores or Stores.deployed()
        self.key = key if key is not None else organizations.pseudonym_key(org)
        self._save = save
        self.handover_ms = (
            handover_ms if handover_ms is not None else get_settings().gdpr_handover_ms
        )
        self.page = page if page is not None else PAGE

    def save(self) -> None:
        """Save the job as it is now. The job object stays the one the steps hold (a step keeps
        its system's progress across saves); only its version and time move on."""
        saver = self._save or job_record.save  # looked up now: a test may wrap it
        saved = saver(self.job, self.subject, self.org.retention_days, time.time())
        self.job.version, self.job.updated_at = saved.version, saved.updated_at

    def begin(self, name: str) -> SystemProgress:
        return self.job.begin(name, time.time())

    def finish(self, name: str, status: SystemStatus = SystemStatus.DONE) -> None:
        self.job.finish(name, time.time(), status)

    def out_of_time(self) -> bool:
        return self.remaining_ms() < self.handover_ms

    def identities(self) -> set[Identity]:
        """Every form of the subject's ids that other data may hold."""
        return self.subject.identities(self.key)

    def needles(self) -> set[str]:
        return {value for _, value in self.identities()}


# ------------------------------------------------------------------ 1. events and claims


def erase_events(run: Run) -> bool:
    """The events the per-user index lists; `events` and `metric_claims` are finished by the
    references step, which deletes any other event of the subject it finds."""
    run.begin("events")
    run.begin("metric_claims")
    org_id = run.org.org_id
    while True:
        actors = run.subject.actors()
        cursor = run.job.cursor
        if cursor.actor >= len(actors):
            break
        page = run.stores.events.user_event_ids(
            org_id, actors[cursor.actor], cursor.after, run.page
        )
        if not page:
            run.job.cursor = Cursor(actor=cursor.actor + 1)
            continue
        docs = run.stores.events.read_documents(org_id, (event_id for _, event_id in page))
        _erase(run, [d for d in docs if run.subject.owns(d)])
        run.job.cursor = Cursor(actor=cursor.actor, after=page[-1][0])
        run.save()
        if run.out_of_time():
            return False
    if run.subject.kind == "user":
        user = clean(run.subject.user, 128)
        # The user's ledgers: a supplier's subscription history, a couple's funnel steps (and
        # the conversion claim of the aggregates counted before the ledgers).
        ledgers = [subscriptions.ledger_key(run.subject.user), funnel.ledger_key(run.subject.user)]
        run.job.systems["metric_claims"].count += run.stores.claims.delete_existing(
            org_id, [f"once|converted|{user}", *ledgers]
        )
    # The other ids, and the pseudonyms anonymised deliveries carry, are suppressed too (each
    # under its kind): a delivery queued before the erasure never sends the subject's events
    # afterwards.
    for kind, value in sorted(run.identities() - {(run.subject.kind, run.subject.user)}):
        run.stores.suppression.add(
            run.org,
            run.stores.suppression.subject_hash(run.org, value, kind),
            run.job.erasure_id,
            time.time(),
        )
    return True


def _erase(run: Run, docs: list[dict[str, Any]], discover: bool = True) -> None:
    """Delete these events of the subject with their metric claims, noting on the way the ids
    the platforms knew them by (saved first: once deleted they cannot be read again). Counted as
    read, not as index keys: an index page may still list an item already deleted (by an
    interrupted run), and that one is not deleted twice."""
    if not docs:
        return
    before = run.subject.model_copy(deep=True)
    for doc in docs:
        _learn(run, doc, discover)
    if run.subject != before:
        run.save()
    org_id = run.org.org_id
    claims = run.job.systems["metric_claims"]
    claims.count += run.stores.claims.delete_existing(org_id, _claim_keys(run.subject, docs))
    # The events' own claims, in their requests' items (read while the events still exist).
    claims.count += run.stores.claims.forget_events(org_id, [str(d["id"]) for d in docs])
    run.stores.events.delete(org_id, (str(d["id"]) for d in docs))
    # Their entries in the mention index name their ids (which may hold the subject's).
    run.stores.mentions(run.org).forget_events(docs)
    run.job.systems["events"].count += len(docs)


def _learn(run: Run, doc: dict[str, Any], discover: bool = True) -> None:
    """Note the ids each platform received for this event and, while `discover`, the anonymous
    ids of a user (the references step looks for the ids known when it starts). For an
    anonymous id, only what the platforms keyed by it: Mixpanel's device id and GA4's client
    id, never the user id an event may also carry."""
    from success_metrics.sync import platforms  # not at import: it brings httpx

    subject = run.subject
    anonymous = doc.get("anonymous_id")
    if discover and anonymous and anonymous not in subject.anonymous_ids:
        subject.anonymous_ids.append(str(anonymous))
    sent = privacy.outbound(
        doc,
        run.key,
        analytics=False,
        anonymise_all=run.org.anonymise_all,
        anonymise_unknown=run.org.anonymise_unknown_country,
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


def _claim_keys(subject: Subject, docs: list[dict[str, Any]]) -> list[str]:
    """Each event's own claim as earlier versions kept it (one item per event) and, for a
    user, the per-user claims (`once|signup|<user>`, `dist|…|active|<user>`…, and the items
    they are packed in, `facts|<measure>|<user>…`). Claims name user ids only: an anonymous
    id's events with a user id keep that user's claims."""
    users = {clean(u, 128) for u in subject.user_ids()}
    keys = []
    for doc in docs:
        keys.append(f"event|{doc['id']}")
        for token in contribution(doc).tokens:
            if users & set(token.key.split("|")):
                # The fact's own item and, for a first-in-period fact, the item it is packed
                # in, which holds only that subject's facts of one measure.
                keys.append(token.key)
                if (group := claims_store.fact_group(token.key)) is not None:
                    keys.append(group[0])
    return keys


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


# ------------------------------------------------------------------ 2. consent


def erase_consent(run: Run) -> bool:
    progress = run.begin("consent")
    for raw in run.subject.raw_ids():
        progress.count += run.stores.consent.delete_partition(f"{run.org.org_id}#{raw}")
    run.finish("consent")
    return True


# ------------------------------------------------------------------ 3. delivery-log payloads


def scrub_deliveries(run: Run) -> bool:
    identities = run.identities()
    needles = run.needles()
    progress = run.begin("deliveries")
    progress.count += delivery_log.scrub_payloads(
        run.org.org_id, lambda docs: scrub_docs(docs, identities, needles)
    )
    # and the messages the organization's dead letters keep for a replay
    progress.count += dead_letters.scrub(
        run.org.org_id, lambda docs: scrub_docs(docs, identities, needles)
    )
    run.finish("deliveries")
    return True


# ------------------------------------------------------------------ 4. mentions elsewhere


def erase_references(run: Run) -> bool:
    """Through the mention index, one key per id of the subject (as stored and as
    pseudonymised): other events that mention it are scrubbed, the subject's own that the
    per-user index does not list are deleted, and the entries go. Resumable: the cursor is the
    id's position and the last event id of the page done."""
    identities = run.identities()
    needles = sorted(run.needles())
    progress = run.begin("references")
    index = run.stores.mentions(run.org)
    org_id = run.org.org_id
    while run.job.cursor.needle < len(needles):
        cursor = run.job.cursor
        needle = needles[cursor.needle]
        ids, after = index.page(needle, cursor.after, run.page)
        own = []
        for doc in run.stores.events.read_documents(org_id, ids):
            if run.subject.owns(doc):
                own.append(doc)
                continue
            cleaned = scrub_event(doc, identities, set(needles))
            if cleaned != doc:
                run.stores.events.rewrite_body(org_id, cleaned)
                progress.count += 1
        _erase(run, own, discover=False)
        index.forget(needle, ids)
        if after is None:
            run.job.cursor = Cursor(needle=cursor.needle + 1)
        else:
            run.job.cursor = Cursor(needle=cursor.needle, after=after)
        run.save()
        if run.out_of_time():
            return False
    for name in ("events", "metric_claims"):
        if run.job.systems[name].status is not SystemStatus.DONE:
            run.finish(name)
    run.finish("references")
    return True


# ------------------------------------------------------------------ 5. export files


def erase_exports(run: Run) -> bool:
    """Every `events` export of the organization, running or finished, is cancelled or
    withdrawn with its files; the subject's own access requests are deleted with their
    records."""
    from success_metrics.exports import finish  # brings the export bucket's store

    progress = run.begin("exports")
    now = time.time()
    for listed in jobs.every_job(run.org.org_id):
        request = listed.request
        mine = request.dataset is Dataset.ACCESS and request.subject in run.subject.user_ids()
        if request.dataset is not Dataset.EVENTS and not mine:
            continue
        export = listed
        if listed.status in ACTIVE:
            jobs.cancel(listed, now)
            export = jobs.get(listed.org_id, listed.export_id)
        if export.status is Status.SUCCEEDED and not export.links_revoked:
            jobs.revoke_links(export)
        finish.cleanup(export, keep_file=False)
        if mine:
            jobs.delete(export)
        progress.count += 1
    run.finish("exports")
    return True


# ------------------------------------------------------------------ scrubbing


def _scrub(value: Any, needles: set[str]) -> Any:
    """`value` with every string equal to one of `needles` replaced by "[erased]"."""
    if isinstance(value, str):
        return ERASED if value in needles else value
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, needles) for k, v in value.items()}
    return value


def scrub_event(
    doc: dict[str, Any], identities: set[Identity], needles: set[str]
) -> dict[str, Any]:
    """Another event with its mentions of the subject erased. Its own ids by kind: the user "x"
    is not a mention of the anonymous id "x"; anywhere else (properties) any form is."""
    fields = suppression.FIELDS
    cleaned = {k: v if k in fields.values() else _scrub(v, needles) for k, v in doc.items()}
    for kind, name in fields.items():
        if doc.get(name) and (kind, str(doc[name])) in identities:
            cleaned[name] = ERASED
    return cleaned


def scrub_docs(
    docs: list[dict[str, Any]], identities: set[Identity], needles: set[str]
) -> list[dict[str, Any]]:
    """A payload's events without the subject's own (those carrying one of its `identities`),
    and with mentions of the subject erased."""
    kept = [d for d in docs if not identities.intersection(suppression.identities(d))]
    return [scrub_event(d, identities, needles) for d in kept]
