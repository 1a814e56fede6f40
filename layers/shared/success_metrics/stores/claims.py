"""The metric claims table (`MetricsClaimsTable`, `pk = <org>|<item>`), see docs/metrics.md:
- one item per ingestion request (`events|<webhook id>`) holding a claim per counted event;
- a subject's first-in-period facts packed per measure and month
  (`facts|<measure>|<subject>|<month>`: the days of that month, the weeks starting in it and
  the month; `facts|<measure>|<subject>`: its seasons), one attribute per fact;
- one item per once-ever fact (`once|…`); one per first-in-period fact and per event
  (`dist|…`, `event|<id>`) as earlier versions claimed them: still read, so that nothing they
  counted counts again, but no longer written;
- a ledger per supplier and per couple.
The aggregator claims them; an erasure deletes a subject's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, Protocol

from botocore.exceptions import ClientError

from success_metrics import aws, concurrency
from success_metrics.settings import get_settings
from success_metrics.stores import batch


class Fact(Protocol):
    """What can be claimed: a unique key."""

    @property
    def key(self) -> str: ...


def delete_existing(org_id: str, claim_keys: Iterable[str]) -> int:
    """Delete the claims among `claim_keys` that exist; returns how many existed."""
    table = get_settings().metrics_claims_table
    wanted = [{"pk": {"S": f"{org_id}|{k}"}} for k in dict.fromkeys(claim_keys)]
    found = batch.get(aws.dynamodb(), table, wanted, projection="pk")
    return batch.delete(aws.dynamodb(), table, [{"pk": i["pk"]} for i in found])


# Claims written by one UpdateItem: DynamoDB caps an expression at 4 KB, and each claim takes
# `#nN = if_not_exists(#nN, :mid), ` (about 30 characters).
GROUP_CLAIMS_PER_CALL = 100


def _in_calls(names: Iterable[str]) -> Iterator[dict[str, str]]:
    """The distinct `names` in groups one expression can hold, as `#nN` placeholders."""
    unique = list(dict.fromkeys(names))
    for start in range(0, len(unique), GROUP_CLAIMS_PER_CALL):
        chunk = unique[start : start + GROUP_CLAIMS_PER_CALL]
        yield {f"#n{i}": name for i, name in enumerate(chunk)}


def fact_group(key: str) -> tuple[str, str] | None:
    """The claims item a first-in-period fact is packed in, and its attribute there; None for
    a once-ever fact (a user signed up, created a wedding...), which keeps an item of its own.

    A fact's item is a function of the fact alone, never of the event claiming it: a week's
    fact lives with the days of the month its Monday is in, whichever day's event claims it
    first. One item per subject, measure and month holds that month's day facts, the weeks
    starting in it and the month (at most 38 attributes, about 2 KB); one per subject and
    measure holds its seasons (two a year). So an item's size is bounded whatever the events
    say, far under DynamoDB's 400 KB."""
    kind, rest = key.split("|", 1)
    if kind != "dist":  # dist|<granularity>|<bucket>|<measure>|<subject>
        return None
    granularity, period, measure, subject = rest.split("|", 3)
    attribute = f"{granularity}|{period}"
    if granularity == "season":
        return f"facts|{measure}|{subject}", attribute
    if granularity == "week":
        year, week = period.split("-W")
        start = date.fromisocalendar(int(year), int(week), 1)
    elif granularity == "month":
        start = date.fromisoformat(f"{period}-01")
    else:
        start = date.fromisoformat(period)
    return f"facts|{measure}|{subject}|{start:%Y-%m}", attribute


def events_group(webhook_id: str) -> str:
    """The claims item of the events of one ingestion request (a resumed request queues the
    same events again under the same webhook id: they meet their claims there)."""
    return f"events|{webhook_id}"


def forget_events(org_id: str, event_ids: Iterable[str]) -> int:
    """Remove the claims of these stored events (found in their request's item: read their
    webhook ids before the events are deleted); returns how many existed."""
    from success_metrics.stores import events

    by_group: dict[str, list[str]] = {}
    for event_id, webhook_id in events.webhook_ids(org_id, event_ids).items():
        by_group.setdefault(events_group(webhook_id), []).append(event_id)
    table = get_settings().metrics_claims_table
    removed = 0
    for group, ids in sorted(by_group.items()):
        for names in _in_calls(ids):
            try:
                answer = aws.dynamodb().update_item(
                    TableName=table,
                    Key={"pk": {"S": f"{org_id}|{group}"}},
                    UpdateExpression="REMOVE " + ", ".join(names),
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames=names,
                    ReturnValues="UPDATED_OLD",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    break  # no claims item for this request (never counted, or expired)
                raise
            removed += len(answer.get("Attributes", {}))
    return removed


# A ledger outlives a short retention: a supplier on a yearly plan changes it once a year, and
# a ledger that expired in between would count the renewal as new business on top of the MRR
# the counters still hold. Kept at least this long after its last change (docs/privacy.md).
LEDGER_MIN_SECONDS = 400 * 86400


class Claims:
    """The claims table: one small item per counted event and per counted fact."""

    def __init__(self, org_id: str, message_id: str, expires_at: int) -> None:
        self.org_id = org_id
        self.message_id = message_id
        self.expires_at = expires_at
        self.table = get_settings().metrics_claims_table
        self._ledgers: dict[str, tuple[dict[str, Any] | None, int]] = {}

    def _pk(self, key: str) -> str:
        return f"{self.org_id}|{key}"

    def read(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Existing claims among `keys` (strongly consistent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        requested = [{"pk": {"S": self._pk(k)}} for k in wanted]
        for item in batch.get(aws.dynamodb(), self.table, requested, consistent=True):
            found[item["pk"]["S"].split("|", 1)[1]] = {"mid": item["mid"]["S"]}
        return found

    def claim(self, key: str) -> bool:
        """True when this message owns the fact (now, or from an earlier delivery of it)."""
        item: dict[str, Any] = {
            "pk": {"S": self._pk(key)},
            "mid": {"S": self.message_id},
            "expires_at": {"N": str(self.expires_at)},
        }
        try:
            aws.dynamodb().put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR mid = :mid",
                ExpressionAttributeValues={":mid": {"S": self.message_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_facts(self, keys: Iterable[str]) -> set[str]:
        """Claim these facts: each first-in-period fact in its packed item (`fact_group`), each
        once-ever fact in its own, after one strongly consistent read of those items and of the
        first-in-period facts' own items as earlier versions wrote them. A fact claimed in
        either form is not claimed again: it is this message's only if this message claimed it
        (in an earlier delivery). Returns the keys that are this message's."""
        wanted = list(dict.fromkeys(keys))
        place = {k: g for k in wanted if (g := fact_group(k)) is not None}
        groups = sorted({g for g, _ in place.values()})
        found: dict[str, dict[str, Any]] = {}
        requested = [{"pk": {"S": self._pk(k)}} for k in [*groups, *wanted]]
        for item in batch.get(aws.dynamodb(), self.table, requested, consistent=True):
            found[item["pk"]["S"].split("|", 1)[1]] = item
        ours: set[str] = set()
        singles: list[str] = []
        packed: dict[str, list[str]] = {}
        for key in wanted:
            own = found.get(key)  # a once-ever fact, or one an earlier version claimed alone
            group, attribute = place.get(key, ("", ""))
            in_group = found.get(group, {}).get(attribute) if group else None
            owner = own["mid"]["S"] if own else in_group["S"] if in_group else None
            if owner == self.message_id:
                ours.add(key)
            elif owner is None and group:
                packed.setdefault(group, []).append(attribute)
            elif owner is None:
                singles.append(key)
        claimed = concurrency.each(self.claim, singles)
        ours.update(k for k, mine in zip(singles, claimed, strict=True) if mine)
        to_pack = list(packed.items())
        won_in = concurrency.each(lambda group: self._claim_in(*group), to_pack)
        won = {(g, a) for (g, _), names in zip(to_pack, won_in, strict=True) for a in names}
        ours.update(k for k, spot in place.items() if spot in won)
        return ours

    def claim_all(self, tokens: Sequence[Fact]) -> set[str]:
        existing = self.read(t.key for t in tokens)
        ours: set[str] = set()
        for token in tokens:
            if token.key in ours:
                continue
            found = existing.get(token.key)
            if found is not None:
                if found["mid"] == self.message_id:
                    ours.add(token.key)
                continue
            if self.claim(token.key):
                ours.add(token.key)
        return ours

    def claim_in_group(self, group: str, names: Sequence[str]) -> set[str]:
        """Claim each of `names` inside the one item `group`, as few writes as the expression
        limit allows: each claim is set to this message's id only where it is absent
        (`if_not_exists`, atomic within the item), and the item as written tells which are this
        message's: the ones just claimed, or claimed by an earlier delivery of it."""
        return self._claim_in(group, names)

    def _claim_in(self, group: str, names: Sequence[str]) -> set[str]:
        ours: set[str] = set()
        for attribute in _in_calls(names):
            claims = ", ".join(f"{a} = if_not_exists({a}, :mid)" for a in attribute)
            answer = aws.dynamodb().update_item(
                TableName=self.table,
                Key={"pk": {"S": self._pk(group)}},
                UpdateExpression=f"SET {claims}, expires_at = :expires",
                ExpressionAttributeNames=attribute,
                ExpressionAttributeValues={
                    ":mid": {"S": self.message_id},
                    ":expires": {"N": str(self.expires_at)},
                },
                ReturnValues="ALL_NEW",
            )
            item = answer["Attributes"]
            ours.update(
                n for n in attribute.values() if item.get(n, {}).get("S") == self.message_id
            )
        return ours

    # -- ledgers: a small document per subject, replaced only by the writer that read it

    def prefetch_ledgers(self, keys: Iterable[str]) -> None:
        """Read these ledgers at once (strongly consistent): `ledger` answers each of them
        once from this read, then from the table again."""
        wanted = list(dict.fromkeys(keys))
        self._ledgers = dict.fromkeys(wanted, (None, 0))
        requested = [{"pk": {"S": self._pk(k)}} for k in wanted]
        for item in batch.get(aws.dynamodb(), self.table, requested, consistent=True):
            self._ledgers[item["pk"]["S"].split("|", 1)[1]] = _ledger_of(item)

    def ledger(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """The ledger document under `key` and its version (None and 0 when there is none)."""
        if key in self._ledgers:
            return self._ledgers.pop(key)
        answer = aws.dynamodb().get_item(
            TableName=self.table, Key={"pk": {"S": self._pk(key)}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return (None, 0) if item is None else _ledger_of(item)

    def save_ledger(self, key: str, doc: dict[str, Any], version: int) -> bool:
        """Replace the ledger if it is still at `version` (0: it must not exist yet); False when
        another writer got there first (read it again)."""
        item = {
            "pk": {"S": self._pk(key)},
            "doc": {"S": json.dumps(doc, separators=(",", ":"), sort_keys=True)},
            "version": {"N": str(version + 1)},
            "mid": {"S": self.message_id},
            "expires_at": {"N": str(max(self.expires_at, int(time.time()) + LEDGER_MIN_SECONDS))},
        }
        request: dict[str, Any] = {"TableName": self.table, "Item": item}
        if version == 0:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            request["ConditionExpression"] = "version = :v"
            request["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
        try:
            aws.dynamodb().put_item(**request)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False  # another writer saved it since it was read


def _ledger_of(item: dict[str, Any]) -> tuple[dict[str, Any], int]:
    return json.loads(item["doc"]["S"]), int(item["version"]["N"])
