"""Signed event ingestion (SPEC §3): verify, limit, validate, store once, queue for sync.

Order matters: the body size is bounded first (cheap), then the signature is verified on the raw
bytes before anything parses them, then the request counts against the organization's limit, and
only then is the body parsed. Processing is idempotent on (organization, webhook-id) for 24 h.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from success_metrics import signing, strict_json, sync_queue
from success_metrics.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from success_metrics.models.events import (
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    Event,
    IngestResult,
    RejectedEvent,
)
from success_metrics.models.organizations import Organization
from success_metrics.observability import MetricUnit, current_function, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import consent, mentions, organizations, rate_limit, suppression
from success_metrics.stores import events as event_store

if TYPE_CHECKING:
    from success_metrics.stores.suppression import Identity

REPLAY_WINDOW_SECONDS = 24 * 3600
MAX_EVENT_BYTES = 64 * 1024
MAX_MENTIONS = mentions.MAX_MENTIONS
_ORG_ID_MAX = 64


@dataclass(slots=True)
class IngestResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


# An unauthenticated caller may cause at most one profile read per organization id (known or
# not) in this many seconds: a flood of bad signatures or unknown ids costs a cached answer.
LOOKUP_INTERVAL_SECONDS = 5.0
_LOOKUPS_MAX = 4096
# Ids found absent, and known organizations re-read after a bad signature: when, per function.
_absent: OrderedDict[tuple[str | None, str], float] = OrderedDict()
_reread: OrderedDict[tuple[str | None, str], float] = OrderedDict()


def _recently(seen: OrderedDict[tuple[str | None, str], float], org_id: str) -> bool:
    last = seen.get((current_function(), org_id))
    return last is not None and time.monotonic() - last < LOOKUP_INTERVAL_SECONDS


def _note(seen: OrderedDict[tuple[str | None, str], float], org_id: str) -> None:
    key = (current_function(), org_id)
    seen[key] = time.monotonic()
    seen.move_to_end(key)
    while len(seen) > _LOOKUPS_MAX:
        seen.popitem(last=False)


def authenticate(org_id: str, headers: Mapping[str, str], body: bytes, now: float) -> Organization:
    """The organization whose current or rotated-out secret signed this body.

    Unknown organizations and bad signatures answer the same 401 so neither can be probed, and
    cost the same: one HMAC check, and at most one (strongly consistent) profile read per
    organization id every `LOOKUP_INTERVAL_SECONDS`; never a write, never a KMS call beyond the
    cached decryption of the organization's current secrets.
    """
    # Malformed or stale headers fail before any lookup.
    signing.check_timestamp(signing.parse_headers(headers), now)
    if not org_id or len(org_id) > _ORG_ID_MAX or not org_id.isascii():
        raise UnauthenticatedError(signing.NO_MATCH)
    org = organizations.cached_organization(org_id)
    if org is None:
        try:
            if _recently(_absent, org_id):
                raise NotFoundError(org_id)
            try:
                org = organizations.get_organization(org_id, fresh=True)
            except NotFoundError:
                _note(_absent, org_id)
                raise
        except NotFoundError as exc:
            # Same work as a real verification, so the answer's timing does not reveal existence.
            _verify_quietly([signing.generate_secret()], headers, body, now)
            raise UnauthenticatedError(signing.NO_MATCH) from exc
    try:
        signing.verify(organizations.webhook_secrets(org, now), headers, body, now)
    except UnauthenticatedError:
        # A secret rotated by another instance moments ago: check once more with a fresh
        # profile, at most once per interval (a rotation is rare, a bad signature may not be).
        if _recently(_reread, org_id):
            raise
        _note(_reread, org_id)
        org = organizations.get_organization(org_id, fresh=True)
        signing.verify(organizations.webhook_secrets(org, now), headers, body, now)
    return org


def _verify_quietly(
    secrets_: list[str], headers: Mapping[str, str], body: bytes, now: float
) -> None:
    try:
        signing.verify(secrets_, headers, body, now)
    except UnauthenticatedError:
        return


def check_media_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json, not {media or 'missing'!r}"
        )


def parse_events(body: bytes) -> list[Any]:
    """The list of raw event objects in a single-event or batch body."""
    payload = strict_json.loads(body)
    if not isinstance(payload, dict):
        raise ValidationFailedError('the body must be an event object or {"events": [...]}')
    if "events" in payload and len(payload) == 1:
        events = payload["events"]
        if not isinstance(events, list):
            raise ValidationFailedError('"events" must be an array of event objects')
        if len(events) > MAX_BATCH_EVENTS:
            raise PayloadTooLargeError(
                f"a batch holds at most {MAX_BATCH_EVENTS} events, this one has {len(events)}"
            )
        if not events:
            raise ValidationFailedError('"events" is empty')
        return events
    return [payload]


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    # The rejected values are not echoed back (or logged): they may hold personal data.
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validate(
    raw_events: list[Any], org_id: str, received_at: float
) -> tuple[list[event_store.StoredEvent], list[RejectedEvent]]:
    valid: list[event_store.StoredEvent] = []
    rejected: list[RejectedEvent] = []
    for index, raw in enumerate(raw_events):
        try:
            event = Event.model_validate(raw)
        except ValidationError as exc:
            rejected.append(RejectedEvent(index=index, errors=_errors(exc)))
            continue
        doc = event_store.document(event, org_id, received_at)
        if len(doc.encode("utf-8")) > MAX_EVENT_BYTES:
            rejected.append(
                RejectedEvent(
                    index=index,
                    errors=[{"loc": [], "msg": "the event exceeds 64 KiB", "type": "too_large"}],
                )
            )
            continue
        if len(event_store.mentions(event)) > MAX_MENTIONS:
            rejected.append(
                RejectedEvent(
                    index=index,
                    errors=[
                        {
                            "loc": ["properties"],
                            "msg": f"the properties hold more than {MAX_MENTIONS} distinct "
                            "id-like strings (1 to 128 characters without spaces), the most "
                            "the erasure index keeps for one event",
                            "type": "too_many_ids",
                        }
                    ],
                )
            )
            continue
        valid.append(event_store.StoredEvent(event, doc))
    return valid, rejected


def _ids(stored: event_store.StoredEvent) -> set[Identity]:
    """The event's ids by kind, as the suppression list names them."""
    ids: set[Identity] = set()
    if stored.event.user_id is not None:
        ids.add(("user", stored.event.user_id))
    if stored.event.anonymous_id is not None:
        ids.add(("anonymous", stored.event.anonymous_id))
    return ids


def _without_suppressed(
    org: Organization, valid: list[event_store.StoredEvent]
) -> tuple[list[event_store.StoredEvent], int]:
    """Events of erased users and anonymous ids are dropped, not stored (SPEC §7); only
    organizations that have erased someone pay for the look-up."""
    if not org.has_suppressions:
        return valid, 0

    gone = suppression.suppressed(org, (i for s in valid for i in _ids(s)))
    kept = [s for s in valid if not gone.intersection(_ids(s))]
    return kept, len(valid) - len(kept)


def _process(
    request: dict[str, Any], org: Organization, body: bytes, received_at: float
) -> dict[str, Any]:
    """The idempotent part: its result is what a replay of the same webhook-id receives."""
    raw_events = parse_events(body)
    valid, rejected = validate(raw_events, org.org_id, received_at)
    if not valid:
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(rejected))
        raise ValidationFailedError(
            "no event in the request is valid",
            rejected=[r.model_dump() for r in rejected],
        )
    valid, suppressed = _without_suppressed(org, valid)
    if suppressed:
        metrics.add_metric(name="EventsSuppressed", unit=MetricUnit.Count, value=suppressed)
    if not valid:
        return _answer(
            IngestResult(accepted=0, duplicates=0, rejected=rejected, suppressed=suppressed)
        )
    rate_limit.consume(org.org_id, "events", len(valid), org.limits.events_per_hour, received_at)
    seen: set[str] = set()
    unique: list[event_store.StoredEvent] = []
    duplicates = 0
    for stored in valid:
        if stored.event.id in seen:
            duplicates += 1
        else:
            seen.add(stored.event.id)
            unique.append(stored)
    outcomes = event_store.put_many(
        org.org_id, request["webhook_id"], unique, org.retention_days, received_at
    )
    accepted = [
        s for s, o in zip(unique, outcomes, strict=True) if o != event_store.Outcome.DUPLICATE
    ]
    # Before the events are queued: an erasure that starts once they are stored finds them.
    event_store.index_mentions(org, [s.event for s in accepted], org.retention_days)
    to_queue = [s.document for s in accepted]
    duplicates += sum(1 for o in outcomes if o == event_store.Outcome.DUPLICATE)
    decisions = [
        json.loads(s.document)
        for s, o in zip(unique, outcomes, strict=True)
        if o != event_store.Outcome.DUPLICATE and s.event.type == consent.DECISION
    ]
    if decisions:
        # Recorded before the batch is queued: the sync path sees a withdrawal before it
        # routes any event accepted after it.
        consent.record_decisions(org.org_id, decisions, org.retention_days, received_at)
    if to_queue:
        settings = get_settings()
        # Both queues carry the same messages: one failing consumer never holds up the other.
        for queue_url in (settings.sync_queue_url, settings.metrics_queue_url):
            sync_queue.enqueue(org.org_id, request["webhook_id"], to_queue, queue_url)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=len(to_queue))
    metrics.add_metric(name="EventsDuplicate", unit=MetricUnit.Count, value=duplicates)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(rejected))
    result = IngestResult(
        accepted=len(to_queue), duplicates=duplicates, rejected=rejected, suppressed=suppressed
    )
    return _answer(result)


def _answer(result: IngestResult) -> dict[str, Any]:
    """The SPEC's `{"accepted", "duplicates", "rejected"}`, with `suppressed` only when events
    of erased users were dropped."""
    return result.model_dump(exclude={"suppressed"} if not result.suppressed else None)


@cache
def _idempotency() -> tuple[Any, Any]:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    from success_metrics.stores import control  # on the first request: Powertools' module

    store = control.idempotency_persistence()
    config = IdempotencyConfig(
        event_key_jmespath="[org_id, webhook_id]",
        payload_validation_jmespath="body_sha256",
        expires_after_seconds=REPLAY_WINDOW_SECONDS,
        raise_on_no_idempotency_key=True,
    )
    return store, config


@cache
def _idempotent_process() -> Any:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.idempotency import idempotent_function

    store, config = _idempotency()
    return idempotent_function(
        _process,
        data_keyword_argument="request",
        persistence_store=store,
        config=config,
        key_prefix="ingest",
    )


def register_lambda_context(context: Any) -> None:
    """Lets an in-progress record expire with the invocation if it crashes mid-way."""
    _idempotency()[1].register_lambda_context(context)


def ingest(
    org_id: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> IngestResponse:
    """Handle one POST of events. `headers` must have lower-case names."""
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    metrics.add_metric(name="IngestRequests", unit=MetricUnit.Count, value=1)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        org = authenticate(org_id, headers, body, now)
    except UnauthenticatedError:
        metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
        raise
    webhook_id = headers["webhook-id"]
    logger.append_keys(org_id=org.org_id, webhook_id=webhook_id)
    quota = rate_limit.consume(org.org_id, "requests", 1, org.limits.requests_per_hour, now)
    check_media_type(headers.get("content-type"))
    request = {
        "org_id": org.org_id,
        "webhook_id": webhook_id,
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    try:
        result = _idempotent_process()(request=request, org=org, body=body, received_at=now)
    except IdempotencyAlreadyInProgressError as exc:
        error = ConflictError(f"webhook-id {webhook_id} is being processed; retry shortly")
        error.headers = {"Retry-After": "5"}
        raise error from exc
    except IdempotencyValidationError as exc:
        raise ConflictError(
            f"webhook-id {webhook_id} was already used for a different body"
        ) from exc
    return IngestResponse(status=202, body=result, headers=quota.headers())


def reset() -> None:
    """Forget the idempotency store (it holds a client bound to the current endpoint)."""
    _absent.clear()
    _reread.clear()
    _idempotent_process.cache_clear()
    _idempotency.cache_clear()
