"""`smctl dest`: an organization's destinations (Mixpanel, GA4, Slack, signed webhooks)."""

from __future__ import annotations

import json

import click

from smctl.changes import audited, uses_aws
from smctl.options import CliError, arguments, command, group, output
from success_metrics.http import parse_model
from success_metrics.models.destinations import DestinationRequest
from success_metrics.stores import destinations
from success_metrics.sync import validation

dest = group("dest", "destinations")


@command(dest, help="create or replace a destination")
@arguments("org_id", "dest_id")
@click.option(
    "--settings",
    required=True,
    help='JSON, e.g. \'{"kind": "ga4", "measurement_id": "G-XXXX", "api_secret": "..."}\'',
)
@click.option("--name")
@click.option("--disabled", is_flag=True)
@audited("dest put", resource="dest_id")
def put(org_id: str, dest_id: str, settings: str, name: str | None, disabled: bool) -> None:
    try:
        parsed = json.loads(settings)
    except ValueError as exc:
        raise CliError(f"--settings must be JSON: {exc}") from exc
    request = parse_model(
        DestinationRequest,
        {"name": name or dest_id, "enabled": not disabled, "settings": parsed},
        "destination",
    )
    saved, generated = destinations.put(org_id, dest_id, request)
    data = destinations.view(saved).model_dump(mode="json")
    text = f"{saved.dest_id}: {saved.kind} destination saved"
    if generated:
        data["signing_secret"] = generated
        text += f"\nsigning secret {generated} (shown once: give it to the endpoint's owner)"
    output(data, text)


@command(dest, "list", help="list destinations (secrets are never shown)")
@click.argument("org_id")
@uses_aws
def list_destinations(org_id: str) -> None:
    found = [destinations.view(d).model_dump(mode="json") for d in destinations.list_all(org_id)]
    lines = [
        f"{d['dest_id']:20} {d['kind']:9} {'enabled ' if d['enabled'] else 'disabled'} {d['name']}"
        for d in found
    ]
    output(found, "\n".join(lines) or "no destinations")


@command(dest, help="remove a destination")
@arguments("org_id", "dest_id")
@audited("dest remove", resource="dest_id")
def remove(org_id: str, dest_id: str) -> None:
    destinations.delete(org_id, dest_id)
    output({"dest_id": dest_id, "removed": True}, f"removed {dest_id}")


@command(dest, help="check a GA4 destination with /debug/mp/collect")
@arguments("org_id", "dest_id")
@uses_aws
def validate(org_id: str, dest_id: str) -> None:
    """Send a sample event to GA4's /debug/mp/collect and show its validation messages."""
    status, messages = validation.validate_ga4(org_id, dest_id)
    output(
        {"status": status, "validation_messages": messages},
        "valid"
        if status == 200 and not messages
        else "\n".join(m.get("description", str(m)) for m in messages) or str(status),
    )
    if messages or status != 200:
        raise SystemExit(1)
