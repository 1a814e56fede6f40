"""Destination storage: items `sk = DEST#<id>` under the organization, secrets encrypted."""

from __future__ import annotations

import json
from typing import Any

from success_metrics import aws, secret_box, signing
from success_metrics.clock import now
from success_metrics.errors import NotFoundError, ValidationFailedError
from success_metrics.models.destinations import (
    SECRET_FIELDS,
    Destination,
    DestinationRequest,
    DestinationView,
)
from success_metrics.settings import get_settings
from success_metrics.stores import items


def _key(org_id: str, dest_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"ORG#{org_id}"}, "sk": {"S": f"DEST#{dest_id}"}}


def view(dest: Destination) -> DestinationView:
    return DestinationView(
        dest_id=dest.dest_id,
        kind=dest.kind,
        name=dest.name,
        enabled=dest.enabled,
        settings=dest.public,
        secrets_set=list(
            SECRET_FIELDS[dest.kind] if dest.secret_names is None else dest.secret_names
        ),
        created_at=dest.created_at,
        updated_at=dest.updated_at,
        failing_since=dest.failing_since,
        disabled_reason=dest.disabled_reason,
    )


def put(org_id: str, dest_id: str, request: DestinationRequest) -> tuple[Destination, str | None]:
    """Create or replace; returns the destination and a newly generated signing secret, if any."""
    fields = request.settings.model_dump()
    kind = fields.pop("kind")
    generated = None
    if kind == "webhook" and not fields.get("signing_secret"):
        generated = fields["signing_secret"] = signing.generate_secret()
    if kind == "webhook":
        try:
            signing.secret_key(fields["signing_secret"])
        except ValueError as exc:
            raise ValidationFailedError(f"settings.signing_secret: {exc}") from exc
    secret_values = {name: fields.pop(name) for name in SECRET_FIELDS[kind]}
    moment = int(now())
    try:
        created_at = get(org_id, dest_id).created_at
    except NotFoundError:
        created_at = moment
    dest = Destination(
        org_id=org_id,
        dest_id=dest_id,
        kind=kind,
        name=request.name,
        enabled=request.enabled,
        public=fields,
        secrets_ciphertext=secret_box.encrypt(json.dumps(secret_values), org_id),
        created_at=created_at,
        updated_at=moment,
        secret_names=[name for name, value in secret_values.items() if value],
    )
    save(dest)
    return dest, generated


def save(dest: Destination) -> None:
    aws.dynamodb().put_item(
        TableName=get_settings().organizations_table,
        Item={**_key(dest.org_id, dest.dest_id), "doc": {"S": dest.model_dump_json()}},
    )


def get(org_id: str, dest_id: str) -> Destination:
    item = items.get(aws.dynamodb(), get_settings().organizations_table, _key(org_id, dest_id))
    if item is None:
        raise NotFoundError(f"destination {dest_id} does not exist")
    return Destination.model_validate_json(item["doc"]["S"])


def list_all(org_id: str) -> list[Destination]:
    found = items.every(
        aws.dynamodb(),
        "query",
        TableName=get_settings().organizations_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :dest)",
        ExpressionAttributeValues={":pk": {"S": f"ORG#{org_id}"}, ":dest": {"S": "DEST#"}},
    )
    return [Destination.model_validate_json(i["doc"]["S"]) for i in found]


def delete(org_id: str, dest_id: str) -> None:
    get(org_id, dest_id)
    aws.dynamodb().delete_item(
        TableName=get_settings().organizations_table, Key=_key(org_id, dest_id)
    )


def secrets(dest: Destination) -> dict[str, str]:
    values: dict[str, str] = json.loads(secret_box.decrypt(dest.secrets_ciphertext, dest.org_id))
    return values
