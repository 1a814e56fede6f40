"""One-time console sign-in links (`ControlTable`, `pk = console-link#<sha256 of the token>`).

Only the token's hash is stored, with the organization, the key the session will be bound to,
and the expiry (15 minutes). Using a link deletes its item in the same request, on the
condition that it is still there and not expired (DynamoDB's TTL deletes late, and not at all
on the emulator), so a link signs in once.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.settings import get_settings

LINK_SECONDS = 15 * 60
PREFIX = "console-link#"


def _pk(token: str) -> str:
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


def create(org_id: str, key_id: str, now: float | None = None) -> tuple[str, int]:
    """A new link token for (organization, key) and when it expires."""
    token = secrets.token_urlsafe(32)
    expires = int(time.time() if now is None else now) + LINK_SECONDS
    aws.dynamodb().put_item(
        TableName=get_settings().control_table,
        Item={
            "pk": {"S": _pk(token)},
            "org_id": {"S": org_id},
            "key_id": {"S": key_id},
            "expires_at": {"N": str(expires)},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    return token, expires


def consume(token: str, now: float | None = None) -> tuple[str, str] | None:
    """(organization, key id) of a live link, which is used up; None for any other token."""
    if not token or len(token) > 128:
        return None
    moment = int(time.time() if now is None else now)
    try:
        answer = aws.dynamodb().delete_item(
            TableName=get_settings().control_table,
            Key={"pk": {"S": _pk(token)}},
            ConditionExpression="attribute_exists(pk) AND expires_at > :now",
            ExpressionAttributeValues={":now": {"N": str(moment)}},
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise
    item = answer["Attributes"]
    return item["org_id"]["S"], item["key_id"]["S"]
