"""The suppression list: users and anonymous ids erased from an organization, whose later
events are dropped.

Items in the privacy table, `pk = suppress#<org>`, `sk = <subject hash>`: only a keyed hash of
the id (HMAC-SHA256 with a key derived from the organization's own key for this purpose, one key
per kind of id), never the id itself, so the list proves nothing about who was erased to anyone
without the key. The kind is part of the hash: erasing the user "x" suppresses events whose
`user_id` is "x", erasing the anonymous id "x" those whose `anonymous_id` is "x"; neither is the
other.

The organization profile carries `has_suppressions`; only organizations that have erased someone
pay for the look-up (one BatchGetItem per batch of events). Profiles are cached for at most
CONFIG_CACHE_SECONDS, so the erasure worker starts deleting only after that has passed since the
user was suppressed: no instance can still store or forward an event of theirs after that.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any, Literal

from success_metrics import aws
from success_metrics.errors import ConflictError
from success_metrics.models.organizations import Organization
from success_metrics.settings import get_settings
from success_metrics.stores import batch, organizations

Kind = Literal["user", "anonymous"]
# (kind, id): the field of an event an id is in, and the id.
Identity = tuple[Kind, str]
FIELDS: dict[Kind, str] = {"user": "user_id", "anonymous": "anonymous_id"}

PURPOSE = "erasure-subject"
# A key per kind: the user "x" and the anonymous id "x" never share a hash. (The user key is
# the one receipts and suppressions were made with before anonymous ids could be erased.)
PURPOSES: dict[Kind, str] = {"user": PURPOSE, "anonymous": f"{PURPOSE}/anonymous"}


def _hash(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def subject_hash(org: Organization, value: str, kind: Kind = "user") -> str:
    """The keyed hash that stands for an id of one kind in the suppression list and erasure
    receipts."""
    return _hash(organizations.derived_key(org, PURPOSES[kind]), value)


def _key(org_id: str, digest: str) -> dict[str, Any]:
    return {"pk": {"S": f"suppress#{org_id}"}, "sk": {"S": digest}}


def actor(doc: dict[str, Any]) -> str | None:
    value = doc.get("user_id") or doc.get("anonymous_id")
    return str(value) if value else None


def identities(doc: dict[str, Any]) -> list[Identity]:
    """The ids in an event that a suppression can name: the user id and the anonymous id."""
    return [(kind, str(doc[name])) for kind, name in FIELDS.items() if doc.get(name)]


def add(org: Organization, digest: str, erasure_id: str, now: float) -> None:
    """Suppress a subject (idempotent), and mark the organization as having suppressions."""
    aws.dynamodb().put_item(
        TableName=get_settings().privacy_table,
        Item={
            **_key(org.org_id, digest),
            "erasure_id": {"S": erasure_id},
            "suppressed_at": {"N": str(int(now))},
        },
    )
    for _ in range(5):
        current = organizations.get_organization(org.org_id, fresh=True)
        if current.has_suppressions:
            return
        try:
            organizations.save_profile(current.model_copy(update={"has_suppressions": True}))
            return
        except ConflictError:
            continue
    raise ConflictError("the organization kept changing; try the erasure again")


def find(org: Organization, digest: str) -> dict[str, Any] | None:
    item = (
        aws.dynamodb()
        .get_item(
            TableName=get_settings().privacy_table,
            Key=_key(org.org_id, digest),
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        return None
    return {
        "erasure_id": item["erasure_id"]["S"],
        "suppressed_at": int(item["suppressed_at"]["N"]),
    }


def suppressed(org: Organization, ids: Iterable[Identity]) -> set[Identity]:
    """Which of `ids` are suppressed (none at all without a look-up for most organizations)."""
    wanted = sorted(set(ids))
    if not org.has_suppressions or not wanted:
        return set()
    keys = {kind: organizations.derived_key(org, PURPOSES[kind]) for kind in {k for k, _ in wanted}}
    by_hash = {_hash(keys[kind], value): (kind, value) for kind, value in wanted}
    table = get_settings().privacy_table
    found: set[Identity] = set()
    hashes = list(by_hash)
    requested = [_key(org.org_id, h) for h in hashes]
    for item in batch.get(aws.dynamodb(), table, requested, projection="sk"):
        found.add(by_hash[item["sk"]["S"]])
    return found


def drop(org: Organization, docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """`docs` without the events of suppressed users and anonymous ids, and how many were
    dropped."""
    if not org.has_suppressions or not docs:
        return docs, 0
    gone = suppressed(org, (i for d in docs for i in identities(d)))
    if not gone:
        return docs, 0
    kept = [d for d in docs if not gone.intersection(identities(d))]
    return kept, len(docs) - len(kept)
