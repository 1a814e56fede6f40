"""Delivery worker: sends queued deliveries to their platform, reliably (SPEC §4).

- Deliveries of the same destination in one SQS batch are combined into as few requests as the
  platform allows (Mixpanel 2000 events / 2 MB, GA4 25 events / 130 kB per user).
- Each request is retried in the invocation with tenacity (5xx, 429, timeouts only; exponential
  backoff with jitter; `Retry-After` honoured), inside a circuit breaker per organization and
  destination whose state all Lambda instances share (Powertools, on the control table).
- What still fails goes back to SQS (partial batch failure) and, after the last receive, to the
  dead-letter queue. 4xx other than 408/429 is final for the records concerned, and logged.
- Every attempt is written to the delivery log; events a delivery already delivered are never
  sent again on a redelivery.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from success_metrics import dead_letters
from success_metrics.errors import NotFoundError
from success_metrics.models.destinations import Destination
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import control, destinations, organizations, suppression
from success_metrics.sync import delivery_log, platforms, ssrf
from success_metrics.sync_queue import unpack_events

ATTEMPTS = 3
MAX_WAIT_SECONDS = 20.0
DISABLE_AFTER_SECONDS = 5 * 86400  # an endpoint failing 5 days in a row is switched off


class RetryableDeliveryError(Exception):
    """A 5xx, 429 or timeout: worth trying again."""

    def __init__(self, outcome: platforms.Outcome) -> None:
        super().__init__(outcome.error or f"HTTP {outcome.status}")
        self.outcome = outcome


@dataclass
class Delivery:
    message_id: str
    receive_count: int
    body: dict[str, Any]

    @property
    def delivery_id(self) -> str:
        return str(self.body["delivery_id"])

    @cached_property
    def events(self) -> list[dict[str, Any]]:

        return unpack_events(self.body)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RetryableDeliveryError) and error.outcome.retry_after is not None:
        return min(error.outcome.retry_after, MAX_WAIT_SECONDS)
    return float(wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)(state))


@cache
def client() -> httpx.Client:
    return ssrf.guarded_client(allow_loopback=get_settings().allow_loopback_webhooks, timeout=10.0)


@cache
def _breaker_store() -> Any:

    return control.breaker_persistence()


def _on_transition(dest: Destination) -> Callable[[Any], None]:
    def notify(transition: Any) -> None:
        to_state = getattr(transition, "to_state", transition)
        state = str(getattr(to_state, "value", to_state))  # "OPEN", "HALF_OPEN", "CLOSED"
        # BreakerToOpen, BreakerToHalfOpen, BreakerToClosed: BreakerOpenAlarm watches the first.
        name = "BreakerTo" + state.rsplit(".", maxsplit=1)[-1].title().replace("_", "")
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        logger.warning("circuit breaker changed", extra={"dest_id": dest.dest_id, "state": state})
        if "open" in state.lower() and "half" not in state.lower():
            # brings httpx: loaded only when a platform is called (cold start)
            from success_metrics.sync import alerts

            alerts.breaker_opened(dest)

    return notify


def guarded(dest: Destination, send: Callable[[], platforms.Outcome]) -> platforms.Outcome:
    """One request: retried with tenacity, each attempt inside the shared circuit breaker."""
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.circuit_breaker import (
        CircuitBreakerConfig,
        circuit_breaker,
    )

    settings = get_settings()
    config = CircuitBreakerConfig(
        failure_threshold=settings.breaker_failures,
        recovery_timeout=settings.breaker_recovery_seconds,
        success_threshold=2,
        # Shared state is re-read at most every second, so every instance sees an open breaker.
        local_cache_max_age=1,
        handled_exceptions=(RetryableDeliveryError, httpx.TransportError),
    )

    @circuit_breaker(
        name=f"{dest.org_id}:{dest.dest_id}",
        persistence_store=_breaker_store(),
        config=config,
        on_transition=_on_transition(dest),
    )
    def attempt() -> platforms.Outcome:
        outcome = send()
        if outcome.retryable:
            raise RetryableDeliveryError(outcome)
        return outcome

    retrying = retry(
        retry=retry_if_exception_type((RetryableDeliveryError, httpx.TransportError)),
        stop=stop_after_attempt(ATTEMPTS) | stop_after_delay(30),
        wait=_wait,
        reraise=True,
    )
    try:
        result: platforms.Outcome = retrying(attempt)()
    except RetryableDeliveryError as exc:
        return exc.outcome
    except httpx.TransportError as exc:
        return platforms.Outcome(None, retryable=True, error=f"{type(exc).__name__}: {exc}")
    return result


def _requests(
    dest: Destination, secrets: dict[str, str], docs: list[dict[str, Any]], now: float
) -> tuple[list[tuple[list[str], Callable[[], platforms.Outcome]]], dict[str, str]]:
    """[(event ids, send)] for the destination's platform, and events skipped outright."""
    http = client()
    settings = get_settings()
    if dest.kind == "mixpanel":
        base = (
            settings.mixpanel_eu_api_url
            if dest.public.get("region") == "eu"
            else settings.mixpanel_api_url
        )
        project = dest.public.get("project_id")
        return [
            (
                [event_id for event_id, _ in batch],
                lambda batch=batch: platforms.send_mixpanel(  # type: ignore[misc]
                    http, base, secrets, project if isinstance(project, str) else None, batch
                ),
            )
            for batch in platforms.mixpanel_batches(docs)
        ], {}
    if dest.kind == "ga4":
        requests, skipped = platforms.ga4_requests(docs, now)
        measurement = str(dest.public["measurement_id"])
        return [
            (
                ids,
                lambda ids=ids, body=body: platforms.send_ga4(  # type: ignore[misc]
                    http, settings.ga4_api_url, measurement, secrets, ids, body
                ),
            )
            for ids, body in requests
        ], skipped
    raise ValueError(f"{dest.kind} is not a combined platform")


def _record(
    dest: Destination,
    delivery: Delivery,
    previous: dict[str, Any],
    status: delivery_log.Status,
    outcome: platforms.Outcome,
    latency_ms: float,
    *,
    failed: dict[str, str],
    delivered: list[str],
    skipped: dict[str, str] | None = None,
) -> None:
    delivery_log.record_attempt(
        dest.org_id,
        delivery.delivery_id,
        dest_id=dest.dest_id,
        kind=dest.kind,
        attempt=delivery.receive_count,
        status=status,
        status_code=outcome.status,
        latency_ms=latency_ms,
        event_ids=[d["id"] for d in delivery.events],
        error=outcome.error,
        failed=failed,
        skipped=skipped,
        payload=delivery.body,
        delivered=delivered,
        previous=previous,
    )


def _retrying(delivery: Delivery) -> delivery_log.Status:
    """A delivery failing for now: retried, or dead-lettered after its queue's last receive."""
    if dead_letters.last_receive("delivery", delivery.receive_count):
        return "dead_lettered"
    return "retrying"


def _pending(
    dest: Destination, deliveries: list[Delivery]
) -> list[tuple[Delivery, dict[str, Any], list[dict[str, Any]]]]:
    """Each delivery, its summary so far, and the events it has not settled yet (never those
    of a user erased since the delivery was queued)."""

    org = organizations.get_organization(dest.org_id)
    gone = suppression.suppressed(
        org, (i for d in deliveries for doc in d.events for i in suppression.identities(doc))
    )
    pending = []
    for delivery in deliveries:
        previous = delivery_log.summary(dest.org_id, delivery.delivery_id) or {}
        done = (
            set(previous.get("delivered", []))
            | set(previous.get("failed", {}))
            | set(previous.get("skipped", {}))
        )
        docs = [
            d
            for d in delivery.events
            if d["id"] not in done and not gone.intersection(suppression.identities(d))
        ]
        pending.append((delivery, previous, docs))
    return pending


def deliver_group(dest: Destination, deliveries: list[Delivery], now: float) -> set[str]:
    """Send one destination's deliveries; returns the SQS message ids to retry."""
    secrets = destinations.secrets(dest)
    pending = _pending(dest, deliveries)
    if dest.kind == "webhook":
        return _deliver_webhooks(dest, secrets, pending)
    all_docs = [d for _, _, docs in pending for d in docs]
    requests, skipped = _requests(dest, secrets, all_docs, now)
    results: dict[str, platforms.Outcome] = {}
    started = time.perf_counter()
    for ids, send in requests:
        outcome = guarded(dest, send)
        for event_id in ids:
            results[event_id] = outcome
    latency = (time.perf_counter() - started) * 1000
    retry_ids: set[str] = set()
    for delivery, previous, docs in pending:
        ids = [d["id"] for d in docs]
        outcomes = [results[i] for i in ids if i in results]
        delivered = [i for i in ids if i in results and i in results[i].delivered]
        failed = {i: results[i].failed[i] for i in ids if i in results and i in results[i].failed}
        skips = {i: skipped[i] for i in ids if i in skipped}
        retryable = [o for o in outcomes if o.retryable]
        status: delivery_log.Status = (
            _retrying(delivery)
            if retryable
            else "failed"
            if failed and not delivered
            else "partial"
            if failed or skips
            else "succeeded"
            if delivered
            else "skipped"
        )
        first = (retryable or outcomes or [platforms.Outcome(None)])[0]
        _record(
            dest,
            delivery,
            previous,
            status,
            platforms.Outcome(first.status, error=retryable[0].error if retryable else None),
            latency,
            failed=failed,
            delivered=delivered,
            skipped=skips,
        )
        if retryable:
            retry_ids.add(delivery.message_id)
            dead_letters.failed(delivery.message_id, retryable[0].error or "still failing")
    metrics.add_metric(name="DeliveryRequests", unit=MetricUnit.Count, value=len(requests))
    outcomes_seen = list(results.values())
    track_health(
        dest,
        any(o.delivered for o in outcomes_seen),
        any(o.retryable or o.failed for o in outcomes_seen),
        now,
    )
    return retry_ids


def _deliver_webhooks(
    dest: Destination,
    secrets: dict[str, str],
    pending: list[tuple[Delivery, dict[str, Any], list[dict[str, Any]]]],
) -> set[str]:
    retry_ids: set[str] = set()
    successes = failures = False
    url = str(dest.public["url"])
    for delivery, previous, docs in pending:
        if not docs:
            continue
        started = time.perf_counter()
        outcome = guarded(
            dest,
            lambda d=delivery, docs=docs: platforms.send_webhook(  # type: ignore[misc]
                client(), url, secrets["signing_secret"], d.delivery_id, docs
            ),
        )
        status: delivery_log.Status = (
            _retrying(delivery)
            if outcome.retryable
            else "failed"
            if outcome.failed
            else "succeeded"
        )
        latency = (time.perf_counter() - started) * 1000
        _record(
            dest,
            delivery,
            previous,
            status,
            outcome,
            latency,
            failed=outcome.failed,
            delivered=outcome.delivered,
        )
        if outcome.retryable:
            retry_ids.add(delivery.message_id)
            dead_letters.failed(delivery.message_id, outcome.error or f"HTTP {outcome.status}")
        successes |= bool(outcome.delivered)
        failures |= bool(outcome.retryable or outcome.failed)
    track_health(dest, successes, failures, time.time())
    return retry_ids


def track_health(dest: Destination, succeeded: bool, failed: bool, now: float) -> None:
    """Remember since when a destination has only failed; disable it after 5 days, with an alert."""
    if succeeded and dest.failing_since is not None:
        destinations.save(dest.model_copy(update={"failing_since": None}))
    elif failed and not succeeded:
        since = dest.failing_since or int(now)
        if now - since >= DISABLE_AFTER_SECONDS:
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(since))
            reason = f"every delivery failed since {started}"
            destinations.save(
                dest.model_copy(
                    update={"enabled": False, "disabled_reason": reason, "failing_since": since}
                )
            )
            from success_metrics.sync import alerts  # Slack: only when a breaker trips

            alerts.post(
                dest.org_id,
                f":no_entry: The {dest.kind} destination *{dest.name}* ({dest.dest_id}) was "
                f"disabled: {reason}. Fix the endpoint, then enable it again with "
                "PUT /v1/destinations.",
            )
            logger.warning("destination disabled", extra={"dest_id": dest.dest_id})
        elif dest.failing_since is None:
            destinations.save(dest.model_copy(update={"failing_since": since}))


def deliver(deliveries: list[Delivery], now: float) -> set[str]:
    """Deliver an SQS batch; returns the message ids that must come back (partial failure)."""
    groups: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        groups[(delivery.body["org_id"], delivery.body["dest_id"])].append(delivery)
    retry_ids: set[str] = set()
    for (org_id, dest_id), group in groups.items():
        try:
            dest = destinations.get(org_id, dest_id)
        except NotFoundError:
            logger.info("destination deleted: deliveries dropped", extra={"dest_id": dest_id})
            continue
        if not dest.enabled:
            continue
        # this Powertools utility loads when first used (cold start)
        from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError

        try:
            retry_ids |= deliver_group(dest, group, now)
        except CircuitBreakerOpenError:
            # The platform is down: the work waits in the queue instead of hammering it.
            retry_ids |= {d.message_id for d in group}
            _dead_lettered_while_open(dest, group)
    return retry_ids


def _dead_lettered_while_open(dest: Destination, group: list[Delivery]) -> None:
    """Deliveries whose last receive found the breaker open: SQS dead-letters them now, and
    their summaries say so (an attempt that sent nothing)."""
    why = "circuit breaker open: not sent (the destination kept failing)"
    for delivery in group:
        dead_letters.failed(delivery.message_id, why)
        if not dead_letters.last_receive("delivery", delivery.receive_count):
            continue
        _record(
            dest,
            delivery,
            delivery_log.summary(dest.org_id, delivery.delivery_id) or {},
            "dead_lettered",
            platforms.Outcome(None, error=why),
            0.0,
            failed={},
            delivered=[],
        )
