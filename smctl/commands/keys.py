"""`smctl key` and `smctl secret`: admin API keys and webhook signing secrets."""

from __future__ import annotations

import click

from smctl.changes import audited, uses_aws
from smctl.options import arguments, command, group, output
from success_metrics.models.organizations import ALL_SCOPES, Scope
from success_metrics.stores import organizations

key = group("key", "admin API keys")


@command(key, help="create an API key; prints it once")
@click.argument("org_id")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in ALL_SCOPES]),
    help="repeat for several (default: all scopes)",
)
@click.option("--description", default="")
@audited("key create")
def create(org_id: str, scopes: tuple[str, ...], description: str) -> None:
    chosen = [Scope(s) for s in (scopes or [s.value for s in ALL_SCOPES])]
    created = organizations.create_api_key(org_id, chosen, description)
    output(
        created.model_dump(mode="json"),
        f"API key {created.key_id} ({' '.join(s.value for s in created.scopes)})\n"
        f"{created.api_key}\nShown once: store it now.",
    )


@command(key, "list", help="list an organization's API keys (never the secrets)")
@click.argument("org_id")
@uses_aws
def list_keys(org_id: str) -> None:
    keys = [
        k.model_dump(mode="json", exclude={"secret_sha256"})
        for k in organizations.list_api_keys(org_id)
    ]
    lines = [
        f"{k['key_id']}  {'revoked' if k['revoked_at'] else 'active '}  {' '.join(k['scopes'])}"
        f"  {k['description']}"
        for k in keys
    ]
    output(keys, "\n".join(lines) or "no keys")


@command(key, help="revoke an API key")
@arguments("org_id", "key_id")
@audited("key revoke", resource="key_id")
def revoke(org_id: str, key_id: str) -> None:
    record = organizations.revoke_api_key(org_id, key_id)
    output(
        {"org_id": record.org_id, "key_id": record.key_id, "revoked_at": record.revoked_at},
        f"revoked {record.key_id} (cached authorizations end within 60 s)",
    )


secret = group("secret", "webhook signing secrets")


@command(secret, help="new webhook secret; the old one lasts 24 h")
@click.argument("org_id")
@audited("secret rotate")
def rotate(org_id: str) -> None:
    new = organizations.rotate_webhook_secret(org_id)
    output(
        {"org_id": org_id, "webhook_secret": new, "previous_valid_hours": 24},
        f"new webhook secret {new}\nThe previous secret stays valid for 24 hours.",
    )
