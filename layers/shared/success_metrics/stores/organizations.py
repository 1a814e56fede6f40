"""Organization storage and the operations `smctl` exposes: create, limits, secrets, API keys.

Items live in the organizations table under `pk = ORG#<org_id>`: the profile (`sk = PROFILE`) and
one item per API key (`sk = KEY#<key_id>`). Each item's document is the model's JSON in `doc`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws, secret_box, signing
from success_metrics.clock import now
from success_metrics.errors import (
    ConflictError,
    NotFoundError,
    UnauthenticatedError,
)
from success_metrics.models.organizations import (
    ALL_SCOPES,
    AlertRule,
    ApiKey,
    CreatedApiKey,
    CreatedOrganization,
    Limits,
    Organization,
    Scope,
    StoredSecret,
)
from success_metrics.observability import current_function
from success_metrics.settings import get_settings
from success_metrics.stores import items

ROTATION_GRACE_SECONDS = 24 * 3600
API_KEY_PREFIX = "smk"
# Keyed by function too: a function must not read what another fetched (see observability).
_profiles: dict[tuple[str | None, str], tuple[float, Organization]] = {}


def _table() -> str:
    return get_settings().organizations_table


def new_org_id() -> str:
    return "org_" + secrets.token_hex(8)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _put(pk: str, sk: str, doc: str, condition: str, values: dict[str, Any] | None = None) -> None:
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "Item": {"pk": {"S": pk}, "sk": {"S": sk}, "doc": {"S": doc}},
        "ConditionExpression": condition,
    }
    if values:
        kwargs["ExpressionAttributeValues"] = values
    aws.dynamodb().put_item(**kwargs)


def _get(pk: str, sk: str) -> str | None:
    item = (
        aws.dynamodb()
        .get_item(TableName=_table(), Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        .get("Item")
    )
    return item["doc"]["S"] if item else None


def create_organization(
    name: str,
    limits: Limits | None = None,
    retention_days: int | None = None,
    *,
    org_id: str | None = None,
) -> CreatedOrganization:
    """A new organization, its first webhook secret and pseudonym key, and an admin API key.
    `org_id` lets a caller name it first (smctl audits the creation before it happens)."""
    settings = get_settings()
    org_id = org_id or new_org_id()
    webhook_secret = signing.generate_secret()
    created = int(now())
    org = Organization(
        org_id=org_id,
        name=name,
        created_at=created,
        limits=limits
        or Limits(
            requests_per_hour=settings.default_requests_per_hour,
            events_per_hour=settings.default_events_per_hour,
            exports_per_hour=settings.default_exports_per_hour,
            running_exports=settings.default_running_exports,
        ),
        retention_days=retention_days or settings.default_retention_days,
        webhook_secrets=[
            StoredSecret(ciphertext=secret_box.encrypt(webhook_secret, org_id), created_at=created)
        ],
        # Created now, so no unauthenticated path ever has to write it (see pseudonym_key).
        pseudonym_key=secret_box.encrypt(secrets.token_hex(32), org_id),
    )
    _put(f"ORG#{org_id}", "PROFILE", org.model_dump_json(), "attribute_not_exists(pk)")
    key = create_api_key(org_id, list(ALL_SCOPES), description="admin key created with the org")
    return CreatedOrganization(
        org_id=org_id,
        name=name,
        webhook_secret=webhook_secret,
        api_key=key.api_key,
        key_id=key.key_id,
    )


def get_organization(org_id: str, *, fresh: bool = False) -> Organization:
    """The organization's profile, from a short in-memory cache unless `fresh`."""
    ttl = get_settings().config_cache_seconds
    key = (current_function(), org_id)
    cached = _profiles.get(key)
    if not fresh and cached is not None and cached[0] > time.monotonic():
        return cached[1]
    doc = _get(f"ORG#{org_id}", "PROFILE")
    if doc is None:
        _forget(org_id)
        raise NotFoundError(f"organization {org_id} does not exist")
    org = Organization.model_validate_json(doc)
    if ttl > 0:
        _profiles[key] = (time.monotonic() + ttl, org)
    return org


def cached_organization(org_id: str) -> Organization | None:
    """The profile if this instance read it recently, without any AWS call."""
    cached = _profiles.get((current_function(), org_id))
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def _forget(org_id: str) -> None:
    for key in [k for k in _profiles if k[1] == org_id]:
        _profiles.pop(key, None)


def save_profile(org: Organization) -> Organization:
    """Save a changed profile read with `fresh=True` (optimistic: ConflictError if it moved)."""
    return _save(org)


def _save(org: Organization) -> Organization:
    """Optimistic write: fails with ConflictError when someone else saved in between."""
    updated = org.model_copy(update={"version": org.version + 1})
    try:
        _put(
            f"ORG#{org.org_id}",
            "PROFILE",
            updated.model_dump_json(),
            "attribute_exists(pk)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise ConflictError("the organization changed meanwhile; try again") from exc
        raise
    _forget(org.org_id)
    return updated


def set_limits(
    org_id: str,
    *,
    requests_per_hour: int | None = None,
    events_per_hour: int | None = None,
    exports_per_hour: int | None = None,
    running_exports: int | None = None,
    retention_days: int | None = None,
    erasures_per_hour: int | None = None,
) -> Organization:
    org = get_organization(org_id, fresh=True)
    limits = org.limits.model_copy(
        update={
            k: v
            for k, v in {
                "requests_per_hour": requests_per_hour,
                "events_per_hour": events_per_hour,
                "exports_per_hour": exports_per_hour,
                "running_exports": running_exports,
                "erasures_per_hour": erasures_per_hour,
            }.items()
            if v is not None
        }
    )
    Limits.model_validate(limits.model_dump())
    update: dict[str, Any] = {"limits": limits}
    if retention_days is not None:
        update["retention_days"] = retention_days
    return _save(Organization.model_validate(org.model_copy(update=update).model_dump()))


def rotate_webhook_secret(org_id: str, grace_seconds: int = ROTATION_GRACE_SECONDS) -> str:
    """A new current secret; the previous one stays valid for `grace_seconds` (24 h)."""
    org = get_organization(org_id, fresh=True)
    moment = int(now())
    kept = [
        s.model_copy(update={"valid_until": moment + grace_seconds}) if s.valid_until is None else s
        for s in org.secrets_valid_at(moment)
    ]
    secret = signing.generate_secret()
    kept.append(StoredSecret(ciphertext=secret_box.encrypt(secret, org_id), created_at=moment))
    _save(org.model_copy(update={"webhook_secrets": kept}))
    return secret


def webhook_secrets(org: Organization, at: float) -> list[str]:
    return [secret_box.decrypt(s.ciphertext, org.org_id) for s in org.secrets_valid_at(at)]


def create_api_key(org_id: str, scopes: list[Scope], description: str = "") -> CreatedApiKey:
    get_organization(org_id, fresh=True)
    key_id = "key_" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        org_id=org_id,
        key_id=key_id,
        secret_sha256=_hash(secret),
        scopes=sorted(set(scopes)),
        created_at=int(now()),
        description=description,
    )
    _put(f"ORG#{org_id}", f"KEY#{key_id}", record.model_dump_json(), "attribute_not_exists(pk)")
    return CreatedApiKey(
        org_id=org_id,
        key_id=key_id,
        api_key=f"{API_KEY_PREFIX}.{org_id}.{key_id}.{secret}",
        scopes=record.scopes,
    )


def revoke_api_key(org_id: str, key_id: str) -> ApiKey:
    doc = _get(f"ORG#{org_id}", f"KEY#{key_id}")
    if doc is None:
        raise NotFoundError(f"API key {key_id} does not exist in organization {org_id}")
    record = ApiKey.model_validate_json(doc)
    if record.revoked_at is None:
        record = record.model_copy(update={"revoked_at": int(now())})
        _put(f"ORG#{org_id}", f"KEY#{key_id}", record.model_dump_json(), "attribute_exists(pk)")
    return record


def list_api_keys(org_id: str) -> list[ApiKey]:
    found = items.every(
        aws.dynamodb(),
        "query",
        TableName=_table(),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :key)",
        ExpressionAttributeValues={":pk": {"S": f"ORG#{org_id}"}, ":key": {"S": "KEY#"}},
    )
    return [ApiKey.model_validate_json(item["doc"]["S"]) for item in found]


def authenticate(api_key: str) -> ApiKey:
    """The key record for a presented API key; UnauthenticatedError for anything else.

    The organization is taken from the stored record, never from the request.
    """
    parts = api_key.split(".")
    if len(parts) != 4 or parts[0] != API_KEY_PREFIX or not all(parts):
        raise UnauthenticatedError("the API key is malformed")
    _, org_id, key_id, secret = parts
    if len(org_id) > 64 or len(key_id) > 64 or len(secret) > 128:
        raise UnauthenticatedError("the API key is malformed")
    doc = _get(f"ORG#{org_id}", f"KEY#{key_id}")
    record = ApiKey.model_validate_json(doc) if doc else None
    # Hash comparison runs even for unknown keys so timing does not tell them apart.
    expected = record.secret_sha256 if record else "0" * 64
    if not hmac.compare_digest(expected, _hash(secret)) or record is None:
        raise UnauthenticatedError("the API key is not valid")
    if record.revoked_at is not None:
        raise UnauthenticatedError("the API key has been revoked")
    return record


def get_api_key(org_id: str, key_id: str) -> ApiKey | None:
    """The stored record of one key (read fresh: a console session checks it is not revoked)."""
    doc = _get(f"ORG#{org_id}", f"KEY#{key_id}")
    return ApiKey.model_validate_json(doc) if doc else None


def clear_cache() -> None:
    _profiles.clear()


def set_gross_margin(org_id: str, margin: Decimal) -> Organization:
    org = get_organization(org_id, fresh=True)
    return _save(Organization.model_validate({**org.model_dump(), "gross_margin": margin}))


def set_slack_webhook(org_id: str, url: str | None) -> Organization:
    """The Slack incoming webhook for the digest and alerts (encrypted; None removes it).
    Refused (`ssrf.UnsafeDestinationError`, a 400) unless `slack.check_url` accepts it: https,
    a host in `SLACK_ALLOWED_HOSTS`, public addresses only."""
    from success_metrics import slack  # not at import: it brings httpx (cold start)

    if url is not None:
        slack.check_url(url)
    org = get_organization(org_id, fresh=True)
    encrypted = secret_box.encrypt(url, org_id) if url else None
    return _save(org.model_copy(update={"slack_webhook": encrypted}))


def slack_webhook(org: Organization) -> str | None:
    return secret_box.decrypt(org.slack_webhook, org.org_id) if org.slack_webhook else None


def set_alert(org_id: str, rule: AlertRule) -> Organization:
    """Add a threshold alert, replacing one on the same metric and operator."""
    org = get_organization(org_id, fresh=True)
    kept = [a for a in org.alerts if (a.metric, a.op) != (rule.metric, rule.op)]
    return _save(org.model_copy(update={"alerts": [*kept, rule]}))


def clear_alerts(org_id: str, metric: str | None = None) -> Organization:
    org = get_organization(org_id, fresh=True)
    kept = [a for a in org.alerts if metric is not None and a.metric != metric]
    return _save(org.model_copy(update={"alerts": kept}))


def list_organizations() -> list[Organization]:
    found = items.every(
        aws.dynamodb(),
        "scan",
        TableName=_table(),
        FilterExpression="sk = :profile",
        ExpressionAttributeValues={":profile": {"S": "PROFILE"}},
    )
    return [Organization.model_validate_json(i["doc"]["S"]) for i in found]


def pseudonym_key(org: Organization, *, create: bool = True) -> bytes:
    """The organization's pseudonym key. Organizations get one when they are created; one made
    before that gets it on first authenticated use. Unauthenticated paths pass `create=False`
    and never write: an organization without a key has nothing such a path could verify."""
    if org.pseudonym_key is None and not create:
        raise NotFoundError(f"organization {org.org_id} has no pseudonym key yet")
    if org.pseudonym_key is None:
        fresh = get_organization(org.org_id, fresh=True)
        if fresh.pseudonym_key is None:
            key = secrets.token_hex(32)
            fresh = _save(
                fresh.model_copy(update={"pseudonym_key": secret_box.encrypt(key, org.org_id)})
            )
        org = fresh
    assert org.pseudonym_key is not None
    return bytes.fromhex(secret_box.decrypt(org.pseudonym_key, org.org_id))


def derived_key(org: Organization, purpose: str, *, create: bool = True) -> bytes:
    """A per-organization key for one purpose (e.g. signing download links), derived from the
    organization's stored key so that purposes never share key material."""
    key = pseudonym_key(org, create=create)
    return hmac.new(key, b"success-metrics/" + purpose.encode(), "sha256").digest()


def set_anonymise_all(org_id: str, enabled: bool) -> Organization:
    return set_privacy(org_id, anonymise_all=enabled)


def set_privacy(
    org_id: str, *, anonymise_all: bool | None = None, anonymise_unknown_country: bool | None = None
) -> Organization:
    """Who is anonymised before anything leaves: everyone (`anonymise_all`), and whether users
    with no known country are (`anonymise_unknown_country`, on by default)."""
    org = get_organization(org_id, fresh=True)
    changes: dict[str, Any] = {}
    if anonymise_all is not None:
        changes["anonymise_all"] = anonymise_all
    if anonymise_unknown_country is not None:
        changes["anonymise_unknown_country"] = anonymise_unknown_country
    return _save(org.model_copy(update=changes)) if changes else org
