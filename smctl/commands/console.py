"""`smctl console link`: a one-time sign-in link to the web console."""

from __future__ import annotations

import click

from smctl.changes import uses_aws
from smctl.options import CliError, command, group, output
from smctl.resources import local_stack
from success_metrics import audit
from success_metrics.models.organizations import ALL_SCOPES, Scope
from success_metrics.settings import get_settings
from success_metrics.stores import console_links, organizations

console = group("console", "the web console")


@command(console, help="a one-time sign-in link (15 minutes, usable once) for a new API key")
@click.argument("org_id", required=False)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in ALL_SCOPES]),
    help="what the session may see and do; repeat for several (default: all scopes)",
)
@uses_aws
def link(org_id: str | None, scopes: tuple[str, ...]) -> None:
    org_id = org_id or _demo_org()
    chosen = [Scope(s) for s in (scopes or [s.value for s in ALL_SCOPES])]
    with audit.cli_operation(org_id, "console link"):
        created = organizations.create_api_key(org_id, chosen, "console sign-in link")
        token, expires = console_links.create(org_id, created.key_id)
    base = (local_stack().get("api_url") or get_settings().public_api_url).rstrip("/")
    if not base:
        raise CliError("no API URL: set PUBLIC_API_URL (the HTTP API's URL)")
    url = f"{base}/console/sign-in/link?token={token}"
    output(
        {"url": url, "org_id": org_id, "key_id": created.key_id, "expires_at": expires},
        f"{url}\nValid for 15 minutes, once. The session is bound to the new key "
        f"{created.key_id} ({' '.join(s.value for s in created.scopes)}): "
        f"`smctl key revoke {org_id} {created.key_id}` ends it.",
    )


def _demo_org() -> str:
    found = local_stack().get("organizations") or []
    if not found:
        raise CliError("name the organization: smctl console link ORG_ID")
    return str(found[0]["org_id"])
