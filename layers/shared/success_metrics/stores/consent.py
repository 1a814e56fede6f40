"""Consent records: each user's current consent per purpose, and its history (SPEC §7).

Items in the privacy table, `pk = <org>#<user>`:
- `sk = consent#<purpose>`: the current state (granted or withdrawn, as of when, which event);
- `sk = history#<occurred_at>#<event id>#<purpose>`: one entry per change, keyed by the event,
  so recording the same event twice (a redelivery) writes the same item.

Two sources, with different authority:
- a `consent.updated` event is a decision: recorded at ingest, before its batch is queued, and it
  replaces the current state unless a later decision is already recorded;
- the `consent` field of any other event is an observation: the sync router records it (and its
  changes) while no decision exists for that purpose, and it never overrides a decision.

Forwarding needs the event's own flag and no recorded withdrawal: after a withdrawal, events that
still carry `"analytics": true` are not forwarded; a recorded grant does not make an event sent
without consent forwardable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.errors import NotFoundError
from success_metrics.settings import get_settings
from success_metrics.stores import batch, items

PURPOSES = ("analytics", "marketing")
DECISION = "consent.updated"
FIELD = "event"


def _table() -> str:
    return get_settings().privacy_table


def _pk(org_id: str, user: str) -> str:
    return f"{org_id}#{user}"


def _actor(doc: dict[str, Any]) -> str | None:
    actor = doc.get("user_id") or doc.get("anonymous_id")
    return str(actor) if actor else None


def _write(
    org_id: str,
    doc: dict[str, Any],
    purpose: str,
    granted: bool,
    source: str,
    expires_at: int,
    now: float,
) -> dict[str, Any] | None:
    """Make (purpose, granted) current unless something newer (or, for the event field,
    anything) is recorded. Returns its history entry when it became current (the caller
    writes the entries of a batch together, `_add_history`), None when it did not."""
    user = _actor(doc)
    assert user is not None
    occurred = str(doc["occurred_at"])
    if source == DECISION:
        condition = "attribute_not_exists(pk) OR updated_at <= :occurred"
    else:  # an observation never replaces a decision, nor a newer observation
        condition = "attribute_not_exists(pk) OR (#source = :source AND updated_at <= :occurred)"
    values: dict[str, Any] = {
        ":granted": {"BOOL": granted},
        ":occurred": {"S": occurred},
        ":event": {"S": str(doc["id"])},
        ":source": {"S": source},
        ":expires": {"N": str(expires_at)},
    }
    try:
        aws.dynamodb().update_item(
            TableName=_table(),
            Key={"pk": {"S": _pk(org_id, user)}, "sk": {"S": f"consent#{purpose}"}},
            UpdateExpression="SET granted = :granted, updated_at = :occurred, "
            "source_event = :event, #source = :source, expires_at = :expires",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#source": "source"},
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise
    return {
        "pk": {"S": _pk(org_id, user)},
        "sk": {"S": f"history#{occurred}#{doc['id']}#{purpose}"},
        "purpose": {"S": purpose},
        "granted": {"BOOL": granted},
        "occurred_at": {"S": occurred},
        "source_event": {"S": str(doc["id"])},
        "source": {"S": source},
        "recorded_at": {"N": str(int(now))},
        "expires_at": {"N": str(expires_at)},
    }


def _add_history(entries: list[dict[str, Any]]) -> int:
    """Write the history entries of the changes just made, 25 to a request (each is keyed by
    its event, so writing one again after a redelivery writes the same item)."""
    unique = {(e["pk"]["S"], e["sk"]["S"]): e for e in entries}  # a batch holds a key once
    batch.write(aws.dynamodb(), _table(), ({"PutRequest": {"Item": e}} for e in unique.values()))
    return len(entries)


def record_decisions(
    org_id: str, docs: Iterable[dict[str, Any]], retention_days: int, now: float
) -> int:
    """Record the `consent.updated` events among `docs` (at ingest); returns changes made."""
    history: list[dict[str, Any]] = []
    expires_at = int(now) + retention_days * 86400
    for doc in docs:
        if doc.get("type") != DECISION or not _actor(doc):
            continue
        for purpose in PURPOSES:
            value = (doc.get("consent") or {}).get(purpose)
            if isinstance(value, bool):
                entry = _write(org_id, doc, purpose, value, DECISION, expires_at, now)
                history += [entry] if entry else []
    return _add_history(history)


Record = tuple[bool, str, str]  # (granted, source, as of)


def current(org_id: str, users: Iterable[str], now: float) -> dict[str, dict[str, Record]]:
    """{user: {purpose: (granted, source, as of)}} for the users with live records."""
    keys = [
        {"pk": {"S": _pk(org_id, u)}, "sk": {"S": f"consent#{p}"}}
        for u in sorted(set(users))
        for p in PURPOSES
    ]
    found: dict[str, dict[str, Record]] = {}
    for item in batch.get(aws.dynamodb(), _table(), keys):
        if int(item.get("expires_at", {}).get("N", "0")) <= now:
            continue
        user = item["pk"]["S"].split("#", 1)[1]
        purpose = item["sk"]["S"].split("#", 1)[1]
        found.setdefault(user, {})[purpose] = (
            item["granted"]["BOOL"],
            item["source"]["S"],
            item["updated_at"]["S"],
        )
    return found


def decisions(
    org_id: str, docs: list[dict[str, Any]], retention_days: int, now: float
) -> dict[str, dict[str, bool]]:
    """{user: {purpose: granted}} of the recorded decisions that gate forwarding for the users
    of `docs`; records the events' consent fields as observations on the way (only changes are
    written: the state is read first, in batches)."""
    users = {u for u in (_actor(d) for d in docs) if u}
    state = current(org_id, users, now)
    expires_at = int(now) + retention_days * 86400
    history: list[dict[str, Any]] = []
    for doc in docs:
        user = _actor(doc)
        if not user or doc.get("type") == DECISION:
            continue
        occurred = str(doc["occurred_at"])
        for purpose in PURPOSES:
            value = (doc.get("consent") or {}).get(purpose)
            if not isinstance(value, bool):
                continue
            known = state.get(user, {}).get(purpose)
            if known is not None and (
                known[1] == DECISION or known[2] > occurred or known[0] == value
            ):
                continue
            entry = _write(org_id, doc, purpose, value, FIELD, expires_at, now)
            if entry is not None:
                history.append(entry)
                state.setdefault(user, {})[purpose] = (value, FIELD, occurred)
    _add_history(history)
    return {
        user: {p: r[0] for p, r in purposes.items() if r[1] == DECISION}
        for user, purposes in state.items()
    }


def view(org_id: str, user_id: str, now: float, limit: int = 1000) -> dict[str, Any]:
    """GET /v1/gdpr/users/{user_id}/consent: the current state and the history, newest first."""
    found = items.every(
        aws.dynamodb(),
        "query",
        TableName=_table(),
        KeyConditionExpression="pk = :pk",
        FilterExpression="expires_at > :now",
        ExpressionAttributeValues={
            ":pk": {"S": _pk(org_id, user_id)},
            ":now": {"N": str(int(now))},
        },
        ScanIndexForward=False,
    )
    state: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for item in found:
        sk = item["sk"]["S"]
        if sk.startswith("consent#"):
            state[sk.split("#", 1)[1]] = {
                "granted": item["granted"]["BOOL"],
                "since": item["updated_at"]["S"],
                "source_event": item["source_event"]["S"],
                "source": item["source"]["S"],
            }
        elif sk.startswith("history#") and len(history) < limit:
            history.append(
                {
                    "purpose": item["purpose"]["S"],
                    "granted": item["granted"]["BOOL"],
                    "occurred_at": item["occurred_at"]["S"],
                    "source_event": item["source_event"]["S"],
                    "source": item["source"]["S"],
                }
            )
    if not state and not history:
        raise NotFoundError(f"no consent is recorded for user {user_id!r}")
    return {"user_id": user_id, "current": state, "history": history}
