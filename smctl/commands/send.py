"""`smctl send`: sign an event file and post it, as the platform's services do."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx

from smctl.options import CliError, global_options, output
from smctl.resources import local_stack
from success_metrics import signing


@click.command(help="sign an event file and post it (default: demo org)")
@global_options
@click.argument("file")
@click.option("--org", "org_id", help="organization id (default: the local stack's demo org)")
@click.option("--secret", help="webhook secret (default: SM_WEBHOOK_SECRET or the demo org's)")
@click.option("--api-url", help="HTTP API base URL (default: the local stack's)")
@click.option("--webhook-id", help="reuse a webhook-id (to try a replay)")
@click.option("--fresh-ids", is_flag=True, help="give every event a new id first")
def send(
    file: str,
    org_id: str | None,
    secret: str | None,
    api_url: str | None,
    webhook_id: str | None,
    fresh_ids: bool,
) -> None:
    """FILE is a JSON file with one event or {"events": [...]}; - for stdin."""
    local = local_stack()
    orgs = local.get("organizations") or [{}]
    org_id = org_id or orgs[0].get("org_id")
    secret = secret or os.environ.get("SM_WEBHOOK_SECRET") or orgs[0].get("webhook_secret")
    api_url = api_url or local.get("api_url")
    if not (org_id and secret and api_url):
        raise CliError(
            "give --org, --secret (or SM_WEBHOOK_SECRET) and --api-url, "
            "or start the local stack so .local/stack.json provides them"
        )
    try:
        body = Path(file).read_bytes() if file != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from exc
    if fresh_ids:
        body = _fresh_ids(body)
    msg_id = webhook_id or "msg_" + uuid.uuid4().hex
    headers = signing.sign_headers(secret, msg_id, int(time.time()), body)
    headers["content-type"] = "application/json"
    url = f"{api_url.rstrip('/')}/v1/organizations/{org_id}/events"
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {exc}") from exc
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text
    output(
        {"status": response.status_code, "webhook_id": msg_id, "response": answer},
        f"{response.status_code} {json.dumps(answer)}",
    )
    if response.status_code >= 300:
        raise SystemExit(1)


def _fresh_ids(body: bytes) -> bytes:
    """Give every event a new id, so a sample file can be sent again and again."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise CliError(f"--fresh-ids needs a JSON file: {exc}") from exc
    events = (
        payload.get("events") if isinstance(payload, dict) and "events" in payload else [payload]
    )
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict):
            event["id"] = "evt_" + uuid.uuid4().hex
    return json.dumps(payload).encode()
