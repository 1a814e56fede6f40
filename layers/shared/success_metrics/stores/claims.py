"""The metric claims table (`MetricsClaimsTable`, `pk = <org>|<fact>`): one item per counted
once-ever or first-in-period fact, and one item per ingestion request (`events|<webhook id>`)
holding a claim per counted event of it (see docs/metrics.md). The aggregator claims them; an
erasure deletes a subject's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.settings import get_settings
from success_metrics.stores import batch


class Fact(Protocol):
    """What can be claimed: a unique key, and a value kept with the claim."""

    @property
    def key(self) -> str: ...

    @property
    def value(self) -> dict[str, str]: ...


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
        self.values: dict[str, dict[str, str]] = {}

    def _pk(self, key: str) -> str:
        return f"{self.org_id}|{key}"

    def read(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Existing claims among `keys` (strongly consistent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        requested = [{"pk": {"S": self._pk(k)}} for k in wanted]
        for item in batch.get(aws.dynamodb(), self.table, requested, consistent=True):
            key = item["pk"]["S"].split("|", 1)[1]
            found[key] = {
                "mid": item["mid"]["S"],
                "value": json.loads(item.get("value", {}).get("S", "{}")),
            }
        return found

    def claim(self, key: str, value: dict[str, str] | None = None) -> bool:
        """True when this message owns the fact (now, or from an earlier delivery of it)."""
        item: dict[str, Any] = {
            "pk": {"S": self._pk(key)},
            "mid": {"S": self.message_id},
            "expires_at": {"N": str(self.expires_at)},
        }
        if value:
            item["value"] = {"S": json.dumps(value, separators=(",", ":"))}
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
            if self.claim(token.key, token.value):
                ours.add(token.key)
        return ours

    def claim_in_group(self, group: str, names: Sequence[str]) -> set[str]:
        """Claim each of `names` inside the one item `group`, as few writes as the expression
        limit allows: each claim is set to this message's id only where it is absent
        (`if_not_exists`, atomic within the item), and the item as written tells which are this
        message's: the ones just claimed, or claimed by an earlier delivery of it."""
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

    def get(self, key: str) -> dict[str, Any] | None:
        return self.read([key]).get(key)

    # -- ledgers: a small document per subject, replaced only by the writer that read it

    def ledger(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """The ledger document under `key` and its version (None and 0 when there is none)."""
        answer = aws.dynamodb().get_item(
            TableName=self.table, Key={"pk": {"S": self._pk(key)}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None:
            return None, 0
        return json.loads(item["doc"]["S"]), int(item["version"]["N"])

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
