"""Console benchmark, on in-process moto, with baselines measured in the same run.

For each page: the server time of the console's handler (session check, the package calls,
rendering, charts) ÷ the time of the same package calls made directly, with the key check the
API's authorizer makes on every request (the floor any client showing those numbers pays),
median of RUNS; and each page's weight, raw and gzip-compressed
(the budget is 150 KB compressed).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import bench_env  # puts the repository on sys.path first

RUNS = int(os.environ.get("BENCH_CONSOLE_RUNS", "5"))
EVENTS = int(os.environ.get("BENCH_CONSOLE_EVENTS", "1500"))


def median_seconds(*works: Callable[[], Any]) -> list[float]:
    """Each work's median time over RUNS, the works taken in turn within each run, so that the
    machine's drift (it is shared) falls on all of them alike."""
    times: list[list[float]] = [[] for _ in works]
    for _ in range(RUNS):
        for spent, work in zip(times, works, strict=True):
            start = time.perf_counter()
            work()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> None:
    from moto import mock_aws

    from devstack import demo
    from devstack.lambda_events import LambdaContext, signed_ingest_event
    from devstack.provision import provision
    from success_metrics import admin, aws, caches, clock, dead_letters
    from success_metrics.errors import NotFoundError
    from success_metrics.exports import api as exports
    from success_metrics.http import Principal
    from success_metrics.metrics import aggregator
    from success_metrics.metrics import api as metrics_api
    from success_metrics.models.destinations import DestinationRequest
    from success_metrics.stores import consent, control, destinations, organizations
    from success_metrics.stores import events as event_store
    from success_metrics.sync import delivery_log, recovery
    from tests.support.console import Console

    with mock_aws():
        caches.reset_all()
        stack = provision(prefix="bench")
        os.environ.update(stack.all_environment())
        caches.reset_all()
        org = organizations.create_organization("Bench Console")
        organizations.set_limits(org.org_id, requests_per_hour=10**6, events_per_hour=10**9)
        for dest_id, settings in {
            "mixpanel": {"kind": "mixpanel", "project_token": "tok", "api_secret": "s3cr3t"},
            "ga4": {"kind": "ga4", "measurement_id": "G-BENCH123", "api_secret": "ga"},
        }.items():
            request = DestinationRequest.model_validate({"name": dest_id, "settings": settings})
            destinations.put(org.org_id, dest_id, request)
        from webhook_receive import app

        # This file is `console` on sys.path too: load the handler by its path.
        spec = importlib.util.spec_from_file_location(
            "console_handler", bench_env.ROOT / "functions" / "console" / "app.py"
        )
        assert spec is not None
        assert spec.loader is not None
        console_app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(console_app)

        events = demo.generate(
            EVENTS, seed=5, season_start=date(2026, 5, 1), season_end=date(2026, 10, 31)
        ) + demo.subscription_book(20, seed=5)
        sink = io.StringIO()
        for batch in demo.batches(events, 250):
            body = json.dumps({"events": batch}).encode()
            event = signed_ingest_event(org.org_id, org.webhook_secret, body)
            with contextlib.redirect_stdout(sink):
                app.lambda_handler(event, LambdaContext("WebhookReceiveFunction", 29))
        sqs = aws.sqs()
        url = stack.physical["MetricsQueue"]["Ref"]
        while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in got:
                aggregator.handle(message["MessageId"], json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

        record = organizations.authenticate(org.api_key)
        principal = Principal(org.org_id, record.key_id, frozenset(s.value for s in record.scopes))
        console = Console(console_app.lambda_handler)
        with contextlib.redirect_stdout(sink):
            console.sign_in(org.api_key)

        season = {"from": "2026-05-01", "to": "2026-10-31"}
        before = {"from": "2025-10-29", "to": "2026-04-30"}

        def overview() -> None:
            metrics_api.get_metrics(principal, {**season, "granularity": "day"})
            metrics_api.get_metrics(principal, {**before, "granularity": "day"})

        someone = next(e["user_id"] for e in events if e.get("user_type") == "couple")

        def consent_history() -> None:
            with contextlib.suppress(NotFoundError):  # no history is an answer too
                consent.view(org.org_id, someone, clock.now())

        def live() -> None:
            for doc in event_store.latest_of_user(org.org_id, someone, 100)[:25]:
                delivery_log.event_status(org.org_id, doc["id"])

        def destination_health() -> None:
            breakers = control.breaker_persistence()
            for dest in admin.list_destinations(principal)["destinations"]:
                breakers.get_state(f"{org.org_id}:{dest['dest_id']}")

        pages: dict[str, tuple[str, Callable[[], Any]]] = {
            "overview": ("/console/overview?from=2026-05-01&to=2026-10-31", overview),
            "metrics": (
                "/console/metrics?metric=mrr_end&granularity=week&from=2026-05-01&to=2026-10-31",
                lambda: metrics_api.get_metrics(principal, {**season, "granularity": "week"}),
            ),
            "breakdowns": (
                "/console/breakdowns?dimension=channel&granularity=season&from=2026-05-01&to=2026-10-31",
                lambda: metrics_api.get_metrics(
                    principal, {**season, "granularity": "season", "breakdown": "channel"}
                ),
            ),
            "cohorts": (
                "/console/cohorts?from=2026-05-01&to=2026-10-31",
                lambda: (
                    metrics_api.get_cohorts(principal, season),
                    metrics_api.get_funnel(principal, season),
                ),
            ),
            "live": ("/console/live?user_id=" + someone, live),
            "destinations": ("/console/destinations", destination_health),
            "privacy": (
                "/console/privacy?user_id=" + someone,
                consent_history,
            ),
            "exports": (
                "/console/exports",
                lambda: exports.list_exports(principal, {"limit": "20"}),
            ),
            "deliveries": (
                "/console/deliveries",
                lambda: (
                    admin.list_deliveries(principal, {"limit": "50"}),
                    destinations.list_all(org.org_id),  # the destination filter's choices
                    recovery.recent(org.org_id),  # the recovery jobs it follows
                ),
            ),
            "dead-letters": (
                "/console/dead-letters",
                lambda: dead_letters.listing(org.org_id),
            ),
            "settings": (
                "/console/settings",
                lambda: (
                    organizations.list_api_keys(org.org_id),
                    organizations.get_organization(org.org_id, fresh=True),
                    admin.list_audit(principal, {"limit": "25"}),
                ),
            ),
        }
        rows = []
        for name, (path, calls) in pages.items():

            def direct(calls: Callable[[], Any] = calls) -> None:
                # What the API pays for the same numbers: the key checked (as the authorizer
                # does on every request), then the same package calls.
                organizations.authenticate(org.api_key)
                calls()

            with contextlib.redirect_stdout(sink):
                page = console.get(path)
                assert page.status == 200, (name, page.body[:300])
                served, floor = median_seconds(lambda p=path: console.get(p), direct)
            raw = len(page.body.encode())
            rows.append((name, served, floor, raw, len(gzip.compress(page.body.encode()))))

    print(f"console pages over {len(events)} events, median of {RUNS} runs, in-process moto")
    print(f"{'page':<11} {'server ms':>9} {'direct ms':>9} {'ratio':>6} {'KB':>7} {'KB gz':>6}")
    for name, served, floor, raw, packed in rows:
        print(
            f"{name:<11} {served * 1000:9.1f} {floor * 1000:9.1f} {served / floor:6.2f} "
            f"{raw / 1024:7.1f} {packed / 1024:6.1f}"
        )
    worst = max(served / floor for _, served, floor, _, _ in rows)
    print(
        f"worst ratio {worst:.2f} (target <= 1.2); heaviest page "
        f"{max(p for *_, p in rows) / 1024:.1f} KB compressed (budget 150 KB)"
    )


if __name__ == "__main__":
    main()
