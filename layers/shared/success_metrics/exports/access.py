"""GDPR access requests: everything held on one user, as a JSON export (SPEC §7).

The export holds, for the user of the caller's organization: every stored event (read through
the `ByUser` index, streamed like any export), the current consent and its history, and every
delivery that carried one of the user's events, with that event's outcome there. Consent and
deliveries are gathered when the job is planned (they are small); events stream.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from success_metrics.errors import NotFoundError
from success_metrics.exports.models import Compression, Dataset, ExportRequest, Format
from success_metrics.gdpr import user_id_of
from success_metrics.http import parse_model
from success_metrics.stores import consent, organizations
from success_metrics.stores import events as events_store
from success_metrics.sync import delivery_log


def request(org_id: str, body: Any, today: date) -> ExportRequest:
    """The export request of an access request `{"user_id", "notify"}`."""

    user = user_id_of(body, {"user_id", "notify"}, '{"user_id": ..., "notify": [addresses]}')
    org = organizations.get_organization(org_id)

    return parse_model(
        ExportRequest,
        {
            "dataset": Dataset.ACCESS,
            "format": Format.JSON,
            "compression": Compression.NONE,
            "from": today - timedelta(days=org.retention_days),
            "to": today,
            "notify": body.get("notify") or [],
            "subject": user,
        },
        "access request",
    )


def gather(org_id: str, user: str, now: float) -> dict[str, Any]:
    """The small part of an access export, and how many events the user has."""
    event_ids = [
        key["pk"]["S"].split("#", 1)[1]
        for _, key in events_store.user_event_keys(org_id, user, None)
    ]
    rows: list[dict[str, Any]] = []
    try:
        held = consent.view(org_id, user, now)
    except NotFoundError:
        held = {"current": {}, "history": []}
    for purpose, state in sorted(held["current"].items()):
        rows.append(
            {
                "record": "consent",
                "at": state["since"],
                "id": state["source_event"],
                "data": {"purpose": purpose, **state},
            }
        )
    for entry in reversed(held["history"]):
        rows.append(
            {
                "record": "consent_history",
                "at": entry["occurred_at"],
                "id": entry["source_event"],
                "data": entry,
            }
        )
    if event_ids:
        wanted = set(event_ids)
        found: dict[str, dict[str, Any]] = {}
        # Each event's deliveries by key (no listing of the whole log).
        for event_id in sorted(wanted):
            for delivery in delivery_log.of_event(org_id, event_id):
                found.setdefault(delivery["delivery_id"], delivery)
        newest_first = sorted(
            found.values(), key=lambda d: (d.get("at", 0), d["delivery_id"]), reverse=True
        )
        for delivery in newest_first:
            mine = wanted.intersection(delivery.get("event_ids", []))
            if not mine:
                continue
            outcome = {e: delivery_log.outcome(delivery, e) for e in sorted(mine)}
            at = delivery.get("at")
            rows.append(
                {
                    "record": "delivery",
                    "at": datetime.fromtimestamp(float(at), tz=UTC).isoformat() if at else None,
                    "id": delivery["delivery_id"],
                    "data": {
                        "destination": delivery.get("dest_id"),
                        "kind": delivery.get("kind"),
                        "status": delivery.get("status"),
                        "events": outcome,
                    },
                }
            )
    return {"events": len(event_ids), "rows": rows}
