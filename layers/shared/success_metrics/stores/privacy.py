"""The privacy table (`PrivacyTable`): erasure job records and per-subject partitions.

Erasure jobs: `pk = erasure#<org>`, `sk = <erasure id>`, `doc` (the job's JSON), `version`
(optimistic concurrency), `subject` (the sealed ids, only while the job runs), `expires_at`.
Consent records live in `pk = <org>#<user or anonymous id>` partitions (see `consent`); the
suppression list and the mention index have their own modules (`stores.suppression`,
`stores.mentions`).
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.settings import get_settings
from success_metrics.stores import batch, items


class VersionConflict(Exception):
    """The record changed since it was read."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    doc: str
    subject: str | None
    expires_at: int


def _job_key(org_id: str, erasure_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"erasure#{org_id}"}, "sk": {"S": erasure_id}}


def load_job(org_id: str, erasure_id: str) -> JobRecord | None:
    found = items.get(aws.dynamodb(), get_settings().privacy_table, _job_key(org_id, erasure_id))
    if found is None:
        return None
    return JobRecord(
        found["doc"]["S"], found.get("subject", {}).get("S"), int(found["expires_at"]["N"])
    )


def save_job(
    org_id: str,
    erasure_id: str,
    doc: str,
    version: int,
    expires_at: int,
    subject: str | None,
) -> None:
    """Write version `version` if the stored one is `version - 1` (or there is none);
    raises VersionConflict otherwise."""
    item = {
        **_job_key(org_id, erasure_id),
        "doc": {"S": doc},
        "version": {"N": str(version)},
        "expires_at": {"N": str(expires_at)},
    }
    if subject is not None:
        item["subject"] = {"S": subject}
    try:
        aws.dynamodb().put_item(
            TableName=get_settings().privacy_table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk) OR version = :v",
            ExpressionAttributeValues={":v": {"N": str(version - 1)}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise VersionConflict(erasure_id) from exc
        raise


def delete_partition(pk: str) -> int:
    """Delete every item of one partition (a subject's consent records); returns how many."""
    table = get_settings().privacy_table
    found = items.every(
        aws.dynamodb(),
        "query",
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ProjectionExpression="pk, sk",
    )
    keys = [{"pk": i["pk"], "sk": i["sk"]} for i in found]
    return batch.delete(aws.dynamodb(), table, keys)
