"""smctl: the operator's command line, against the local stack or a real AWS account.

Resources are found, in order: environment variables (EVENTS_TABLE, ORGANIZATIONS_TABLE, ...);
the local stack's `.local/stack.json` (when it exists; `--stack-file` names another); the outputs
of the CloudFormation stack `--stack-name`. Every command takes `--json` and exits non-zero with a
one-line reason on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from success_metrics import audit, aws, signing
from success_metrics.errors import SuccessMetricsError
from success_metrics.http import parse_model
from success_metrics.models.destinations import DestinationRequest
from success_metrics.models.organizations import ALL_SCOPES, AlertRule, Scope
from success_metrics.settings import get_settings, reset_settings
from success_metrics.stores import destinations, organizations
from success_metrics.sync import platforms, ssrf
from success_metrics.sync_queue import unpack_events

STACK_FILE = Path(".local/stack.json")
# CloudFormation output name -> the environment variable the package reads.
STACK_OUTPUTS = {
    "EventsTableName": "EVENTS_TABLE",
    "OrganizationsTableName": "ORGANIZATIONS_TABLE",
    "ControlTableName": "CONTROL_TABLE",
    "SyncQueueUrl": "SYNC_QUEUE_URL",
    "SecretsKeyId": "KMS_KEY_ID",
    "MetricsQueueUrl": "METRICS_QUEUE_URL",
    "MetricsTableName": "METRICS_TABLE",
    "MetricsClaimsTableName": "METRICS_CLAIMS_TABLE",
    "DeliveryQueueUrl": "DELIVERY_QUEUE_URL",
    "DeliveriesTableName": "DELIVERIES_TABLE",
    "ExportsTableName": "EXPORTS_TABLE",
    "ExportQueueUrl": "EXPORT_QUEUE_URL",
    "ExportsBucketName": "EXPORTS_BUCKET",
    "PrivacyTableName": "PRIVACY_TABLE",
    "AuditTableName": "AUDIT_TABLE",
}


class CliError(Exception):
    """A failure explained in one line."""


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def local_stack(args: argparse.Namespace) -> dict[str, Any]:
    """The running local stack's description, or {} when there is none (or it is ignored)."""
    stack_file = Path(args.stack_file) if args.stack_file else STACK_FILE
    if args.no_local or args.endpoint_url or not stack_file.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(stack_file.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {stack_file}: {exc}") from exc
    return data


def configure(args: argparse.Namespace) -> None:
    """Point the package at the right resources before any command runs."""
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    local = local_stack(args)
    endpoint = args.endpoint_url or local.get("aws_endpoint")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        # The local emulator accepts any credentials; real AWS uses the normal chain.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ.setdefault("AWS_DEFAULT_REGION", local.get("region", "eu-west-1"))
        # The local stack enforces IAM: its operator is an admin user whose keys it wrote.
        credentials = local.get("credentials") if endpoint == local.get("aws_endpoint") else None
        if credentials:
            os.environ["AWS_ACCESS_KEY_ID"] = str(credentials["aws_access_key_id"])
            os.environ["AWS_SECRET_ACCESS_KEY"] = str(credentials["aws_secret_access_key"])
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.pop("AWS_SECURITY_TOKEN", None)
    wanted = set(STACK_OUTPUTS.values())
    for name, value in (local.get("environment") or {}).items():
        os.environ.setdefault(name, str(value))
    if not all(os.environ.get(name) for name in wanted):
        _from_stack_outputs(args.stack_name)
    reset_settings()
    aws.reset_clients()


def _from_stack_outputs(stack_name: str) -> None:
    # boto3 and botocore load on first use, not at import (cold start)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise CliError(
            f"cannot find the resources: no .local/stack.json, no environment variables, and "
            f"the CloudFormation stack {stack_name!r} could not be read ({exc})"
        ) from exc
    for output in stacks[0].get("Outputs", []):
        env = STACK_OUTPUTS.get(output["OutputKey"])
        if env:
            os.environ.setdefault(env, output["OutputValue"])


# ------------------------------------------------------------------ commands


def cmd_org_create(args: argparse.Namespace) -> None:

    created = organizations.create_organization(args.name, org_id=args.org_id)
    data = {
        "org_id": created.org_id,
        "webhook_secret": created.webhook_secret,
        "api_key": created.api_key,
        "key_id": created.key_id,
    }
    _print(
        args,
        data,
        f"organization  {created.org_id}  ({created.name})\n"
        f"webhook secret {created.webhook_secret}\n"
        f"admin API key  {created.api_key}\n"
        "These secrets are shown once: store them now.",
    )


def cmd_org_show(args: argparse.Namespace) -> None:

    org = organizations.get_organization(args.org_id, fresh=True)
    data = org.model_dump(mode="json", exclude={"webhook_secrets"})
    data["webhook_secrets"] = len(org.webhook_secrets)
    _print(args, data, "\n".join(f"{k:16} {v}" for k, v in data.items()))


def cmd_org_set_limits(args: argparse.Namespace) -> None:

    if all(
        v is None
        for v in (
            args.requests_per_hour,
            args.events_per_hour,
            args.exports_per_hour,
            args.running_exports,
            args.retention_days,
            args.erasures_per_hour,
        )
    ):
        raise CliError(
            "give at least one of --requests-per-hour, --events-per-hour, "
            "--exports-per-hour, --running-exports, --retention-days, --erasures-per-hour"
        )
    org = organizations.set_limits(
        args.org_id,
        requests_per_hour=args.requests_per_hour,
        events_per_hour=args.events_per_hour,
        exports_per_hour=args.exports_per_hour,
        running_exports=args.running_exports,
        retention_days=args.retention_days,
        erasures_per_hour=args.erasures_per_hour,
    )
    data = {
        "org_id": org.org_id,
        "limits": org.limits.model_dump(),
        "retention_days": org.retention_days,
    }
    _print(
        args, data, f"{org.org_id}: {org.limits.model_dump()} retention {org.retention_days} days"
    )


def cmd_org_set_margin(args: argparse.Namespace) -> None:

    try:
        org = organizations.set_gross_margin(args.org_id, Decimal(args.margin))
    except (InvalidOperation, ValidationError) as exc:
        raise CliError("the gross margin is a number above 0 and at most 1 (e.g. 0.8)") from exc
    _print(
        args,
        {"org_id": org.org_id, "gross_margin": str(org.gross_margin)},
        f"{org.org_id}: gross margin {org.gross_margin}",
    )


def cmd_org_set_slack(args: argparse.Namespace) -> None:

    # Checked by set_slack_webhook: https, a host in SLACK_ALLOWED_HOSTS, public addresses.
    org = organizations.set_slack_webhook(args.org_id, None if args.url == "none" else args.url)
    state = "set" if org.slack_webhook else "removed"
    _print(
        args, {"org_id": org.org_id, "slack_webhook": state}, f"{org.org_id}: Slack webhook {state}"
    )


def cmd_org_set_privacy(args: argparse.Namespace) -> None:

    if args.anonymise_all is None and args.anonymise_unknown_country is None:
        raise CliError("give --anonymise-all and/or --anonymise-unknown-country (on or off)")
    org = organizations.set_privacy(
        args.org_id,
        anonymise_all=args.anonymise_all,
        anonymise_unknown_country=args.anonymise_unknown_country,
    )
    data = {
        "org_id": org.org_id,
        "anonymise_all": org.anonymise_all,
        "anonymise_unknown_country": org.anonymise_unknown_country,
    }
    _print(
        args,
        data,
        f"{org.org_id}: anonymise all {'on' if org.anonymise_all else 'off'}, users with no "
        f"country {'anonymised' if org.anonymise_unknown_country else 'not anonymised'}",
    )


def cmd_org_set_anonymise_all(args: argparse.Namespace) -> None:
    args.anonymise_unknown_country = None
    cmd_org_set_privacy(args)


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("on or off")
    return value == "on"


def cmd_org_set_alert(args: argparse.Namespace) -> None:

    try:
        rule = AlertRule(metric=args.metric, op=args.op, value=Decimal(args.value))
    except (InvalidOperation, ValidationError) as exc:
        raise CliError(f"not a valid alert: {args.metric} {args.op} {args.value}") from exc
    org = organizations.set_alert(args.org_id, rule)
    alerts = [a.model_dump(mode="json") for a in org.alerts]
    _print(
        args,
        {"org_id": org.org_id, "alerts": alerts},
        "\n".join(f"{a['metric']} {a['op']} {a['value']}" for a in alerts),
    )


def cmd_org_clear_alerts(args: argparse.Namespace) -> None:

    org = organizations.clear_alerts(args.org_id, args.metric)
    _print(
        args,
        {"org_id": org.org_id, "alerts": [a.model_dump(mode="json") for a in org.alerts]},
        f"{org.org_id}: {len(org.alerts)} alerts left",
    )


def cmd_key_create(args: argparse.Namespace) -> None:

    scopes = [Scope(s) for s in (args.scope or [s.value for s in ALL_SCOPES])]
    created = organizations.create_api_key(args.org_id, scopes, args.description or "")
    _print(
        args,
        created.model_dump(mode="json"),
        f"API key {created.key_id} ({' '.join(s.value for s in created.scopes)})\n"
        f"{created.api_key}\nShown once: store it now.",
    )


def cmd_key_list(args: argparse.Namespace) -> None:

    keys = [
        k.model_dump(mode="json", exclude={"secret_sha256"})
        for k in organizations.list_api_keys(args.org_id)
    ]
    lines = [
        f"{k['key_id']}  {'revoked' if k['revoked_at'] else 'active '}  {' '.join(k['scopes'])}"
        f"  {k['description']}"
        for k in keys
    ]
    _print(args, keys, "\n".join(lines) or "no keys")


def cmd_key_revoke(args: argparse.Namespace) -> None:

    record = organizations.revoke_api_key(args.org_id, args.key_id)
    _print(
        args,
        {"org_id": record.org_id, "key_id": record.key_id, "revoked_at": record.revoked_at},
        f"revoked {record.key_id} (cached authorizations end within 60 s)",
    )


def cmd_secret_rotate(args: argparse.Namespace) -> None:

    secret = organizations.rotate_webhook_secret(args.org_id)
    _print(
        args,
        {"org_id": args.org_id, "webhook_secret": secret, "previous_valid_hours": 24},
        f"new webhook secret {secret}\nThe previous secret stays valid for 24 hours.",
    )


def cmd_send(args: argparse.Namespace) -> None:

    # httpx loads only for outbound calls (cold start)
    import httpx

    local = local_stack(args)
    orgs = local.get("organizations") or [{}]
    org_id = args.org or orgs[0].get("org_id")
    secret = args.secret or os.environ.get("SM_WEBHOOK_SECRET") or orgs[0].get("webhook_secret")
    api_url = args.api_url or local.get("api_url")
    if not (org_id and secret and api_url):
        raise CliError(
            "give --org, --secret (or SM_WEBHOOK_SECRET) and --api-url, "
            "or start the local stack so .local/stack.json provides them"
        )
    try:
        body = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
    if args.fresh_ids:
        body = _fresh_ids(body)
    msg_id = args.webhook_id or "msg_" + uuid.uuid4().hex
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
    data = {"status": response.status_code, "webhook_id": msg_id, "response": answer}
    _print(args, data, f"{response.status_code} {json.dumps(answer)}")
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


def _control(args: argparse.Namespace, method: str, path: str) -> Any:
    # httpx loads only for outbound calls (cold start)
    import httpx

    local = local_stack(args)
    if not local.get("control_url"):
        return None
    try:
        response = httpx.request(method, f"{local['control_url']}{path}", timeout=300)
    except httpx.HTTPError as exc:
        raise CliError(f"the local stack does not answer ({exc}); is `make run` running?") from exc
    answer = response.json()
    if response.status_code >= 300:
        raise CliError(str(answer.get("error", answer)))
    return answer


def cmd_schedule_list(args: argparse.Namespace) -> None:
    status = _control(args, "GET", "/status")
    if status is None:
        configure(args)
        schedules = [
            {"name": r["logical_id"], "rule": r["physical_id"]} for r in _aws_schedules(args)
        ]
    else:
        schedules = status["schedules"]
    _print(
        args,
        schedules,
        "\n".join(f"{s['name']}  {s.get('expression', s.get('rule'))}" for s in schedules)
        or "no schedules",
    )


def cmd_schedule_run(args: argparse.Namespace) -> None:
    answer = _control(args, "POST", f"/schedules/{args.name}/run")
    if answer is None:
        configure(args)
        answer = _run_aws_schedule(args)
    _print(args, answer, f"ran {args.name}: {json.dumps(answer.get('result'))}")


def _aws_schedules(args: argparse.Namespace) -> list[dict[str, str]]:
    # boto3 and botocore load on first use, not at import (cold start)
    import boto3

    resources = boto3.client("cloudformation").describe_stack_resources(StackName=args.stack_name)
    return [
        {"logical_id": r["LogicalResourceId"], "physical_id": r["PhysicalResourceId"]}
        for r in resources["StackResources"]
        if r["ResourceType"] == "AWS::Events::Rule"
    ]


def _run_aws_schedule(args: argparse.Namespace) -> dict[str, Any]:
    """Invoke the rule's target function with the event EventBridge would send."""
    # boto3 and botocore load on first use, not at import (cold start)
    import boto3

    rules = [r for r in _aws_schedules(args) if args.name in r["logical_id"]]
    if len(rules) != 1:
        names = ", ".join(r["logical_id"] for r in _aws_schedules(args)) or "none"
        raise CliError(f"{args.name!r} matches {len(rules)} schedule rules (rules: {names})")
    rule = rules[0]["physical_id"]
    events = boto3.client("events")
    arn = events.describe_rule(Name=rule)["Arn"]
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    payload = {
        "version": "0",
        "id": "smctl",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "resources": [arn],
        "detail": {},
    }
    result = boto3.client("lambda").invoke(
        FunctionName=targets[0]["Arn"], Payload=json.dumps(payload).encode()
    )
    body = result["Payload"].read().decode()
    if result.get("FunctionError"):
        raise CliError(f"{args.name} failed: {body[:300]}")
    return {"schedule": args.name, "result": json.loads(body or "null")}


QUEUES = {
    "sync": "SYNC_QUEUE_URL",
    "metrics": "METRICS_QUEUE_URL",
    "delivery": "DELIVERY_QUEUE_URL",
    "export": "EXPORT_QUEUE_URL",
    "gdpr": "GDPR_QUEUE_URL",
}


def _dead_letter_url(source_url: str) -> str:
    sqs = aws.sqs()
    attributes = sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["RedrivePolicy"])
    policy = json.loads(attributes["Attributes"]["RedrivePolicy"])
    name = policy["deadLetterTargetArn"].rsplit(":", 1)[1]
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def _summary(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {"body": body[:80]}

    return {
        "org_id": data.get("org_id"),
        "dest_id": data.get("dest_id"),
        "delivery_id": data.get("delivery_id"),
        "events": len(unpack_events(data)) if data.get("dest_id") else len(data.get("events", [])),
    }


def cmd_dlq_list(args: argparse.Namespace) -> None:
    source = os.environ[QUEUES[args.queue]]
    dlq = _dead_letter_url(source)
    sqs = aws.sqs()
    count = int(
        sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    peek = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=1)
    messages = [
        {"message_id": m["MessageId"], **_summary(m["Body"])} for m in peek.get("Messages", [])
    ]
    for message in peek.get("Messages", []):  # a look, not a take: visible again at once
        sqs.change_message_visibility(
            QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    data = {"queue": args.queue, "dead_letter_queue": dlq, "approximate": count, "sample": messages}
    lines = [f"{args.queue} dead-letter queue: about {count} message(s)"]
    lines += [
        f"  {m['message_id']}  {json.dumps({k: v for k, v in m.items() if k != 'message_id'})}"
        for m in messages
    ]
    _print(args, data, "\n".join(lines))


def cmd_dlq_replay(args: argparse.Namespace) -> None:
    """Move dead-lettered messages back to their source queue (oldest first, up to --max)."""
    source = os.environ[QUEUES[args.queue]]
    dlq = _dead_letter_url(source)
    sqs = aws.sqs()
    moved = 0
    while moved < args.max:
        got = sqs.receive_message(
            QueueUrl=dlq,
            MaxNumberOfMessages=min(10, args.max - moved),
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            sqs.send_message(
                QueueUrl=source,
                MessageBody=message["Body"],
                MessageAttributes=message.get("MessageAttributes", {}),
            )
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    _print(
        args,
        {"queue": args.queue, "replayed": moved},
        f"replayed {moved} message(s) to {args.queue}",
    )


def cmd_dest_put(args: argparse.Namespace) -> None:

    try:
        settings = json.loads(args.settings)
    except ValueError as exc:
        raise CliError(f"--settings must be JSON: {exc}") from exc
    request = parse_model(
        DestinationRequest,
        {"name": args.name or args.dest_id, "enabled": not args.disabled, "settings": settings},
        "destination",
    )
    dest, generated = destinations.put(args.org_id, args.dest_id, request)
    data = destinations.view(dest).model_dump(mode="json")
    text = f"{dest.dest_id}: {dest.kind} destination saved"
    if generated:
        data["signing_secret"] = generated
        text += f"\nsigning secret {generated} (shown once: give it to the endpoint's owner)"
    _print(args, data, text)


def cmd_dest_list(args: argparse.Namespace) -> None:

    found = [
        destinations.view(d).model_dump(mode="json") for d in destinations.list_all(args.org_id)
    ]
    lines = [
        f"{d['dest_id']:20} {d['kind']:9} {'enabled ' if d['enabled'] else 'disabled'} {d['name']}"
        for d in found
    ]
    _print(args, found, "\n".join(lines) or "no destinations")


def cmd_dest_remove(args: argparse.Namespace) -> None:

    destinations.delete(args.org_id, args.dest_id)
    _print(args, {"dest_id": args.dest_id, "removed": True}, f"removed {args.dest_id}")


def cmd_dest_validate(args: argparse.Namespace) -> None:
    """GA4: send a sample event to /debug/mp/collect and show its validation messages."""

    dest = destinations.get(args.org_id, args.dest_id)
    if dest.kind != "ga4":
        raise CliError("only GA4 offers a validation endpoint (/debug/mp/collect)")
    sample = {
        "id": "evt_validate",
        "type": "user.signed_up",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user_id": "usr_validate",
        "properties": {"channel": "smctl"},
    }
    requests, _ = platforms.ga4_requests([sample], time.time())
    _, body = requests[0]
    settings = get_settings()
    with ssrf.guarded_client(allow_loopback=settings.allow_loopback_webhooks) as client:
        response = client.post(
            f"{settings.ga4_api_url.rstrip('/')}/debug/mp/collect",
            params={
                "measurement_id": str(dest.public["measurement_id"]),
                "api_secret": destinations.secrets(dest)["api_secret"],
            },
            json=body,
        )
    try:
        messages = response.json().get("validationMessages", [])
    except ValueError:
        messages = [{"description": response.text[:200]}]
    data = {"status": response.status_code, "validation_messages": messages}
    _print(
        args,
        data,
        "valid"
        if response.status_code == 200 and not messages
        else "\n".join(m.get("description", str(m)) for m in messages) or str(response.status_code),
    )
    if messages or response.status_code != 200:
        raise SystemExit(1)


# ------------------------------------------------------------------ parser


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return number


# ------------------------------------------------------------------ exports (through the API)


def _api(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The API's URL and the Authorization header of an admin key."""
    local = local_stack(args)
    orgs = local.get("organizations") or [{}]
    key = args.api_key or os.environ.get("SM_API_KEY") or orgs[0].get("api_key")
    api_url = args.api_url or os.environ.get("SM_API_URL") or local.get("api_url")
    if not (key and api_url):
        raise CliError(
            "give --api-key (or SM_API_KEY) and --api-url (or SM_API_URL), "
            "or start the local stack so .local/stack.json provides them"
        )
    return str(api_url).rstrip("/"), {"Authorization": f"Bearer {key}"}


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    # httpx loads only for outbound calls (cold start)
    import httpx

    api_url, headers = _api(args)
    try:
        response = httpx.request(method, api_url + path, headers=headers, timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {api_url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise CliError(f"{response.status_code}: {detail}")
    return response


def _export_line(job: dict[str, Any]) -> str:
    progress = job["progress"]
    percent = "" if progress["percent"] is None else f" {progress['percent']:.0f}%"
    line = (
        f"{job['id']}  {job['status']}{percent}  {job['dataset']} {job['format']} "
        f"{job['range']['from']}..{job['range']['to']}  {progress['rows']:,} rows"
    )
    if job.get("error"):
        line += f"  error: {job['error']}"
    return line


def _wait(
    args: argparse.Namespace,
    job: dict[str, Any],
    path: str = "/v1/exports/{}",
    ident: str = "id",
    line: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Poll a job (an export by default) until it is no longer queued or running."""

    describe = line or _export_line
    deadline = time.monotonic() + args.timeout
    while job["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise CliError(f"{job[ident]} is still {job['status']} after {args.timeout} s")
        if not args.json:
            print(describe(job), file=sys.stderr)
        time.sleep(2)
        job = _call(args, "GET", path.format(job[ident])).json()
    return job


def _erasure_line(job: dict[str, Any]) -> str:
    systems = "  ".join(
        f"{name}={s['status']}" + (f"({s['count']})" if s["count"] else "")
        for name, s in job["systems"].items()
    )
    return f"{job['erasure_id']}  {job['status']:<15} {systems}"


def _erasure_wait(args: argparse.Namespace, job: dict[str, Any]) -> dict[str, Any]:
    if not args.wait:
        return job
    job = _wait(args, job, "/v1/gdpr/erasures/{}", "erasure_id", _erasure_line)
    if job["status"] != "succeeded":
        _print(args, job, _erasure_line(job))
        raise SystemExit(1)
    return job


def cmd_gdpr_erase(args: argparse.Namespace) -> None:
    if args.anonymous_id is not None:
        subject = {"anonymous_id": args.anonymous_id}
    else:
        subject = {"user_id": args.user_id}
    job = _call(args, "POST", "/v1/gdpr/erasures", json=subject).json()
    job = _erasure_wait(args, job)
    _print(args, job, _erasure_line(job))


def cmd_gdpr_erasure(args: argparse.Namespace) -> None:
    job = _call(args, "GET", f"/v1/gdpr/erasures/{args.erasure_id}").json()
    job = _erasure_wait(args, job)
    _print(args, job, _erasure_line(job))


def _audit_line(record: dict[str, Any]) -> str:
    status = record.get("status", "…")
    resource = f"  {record['resource_id']}" if record.get("resource_id") else ""
    return (
        f"{record['at']}  {record['key_id']:<24} {record['method']:<6} {status!s:<4} "
        f"{record['route']}{resource}"
    )


def cmd_audit_list(args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"limit": min(args.limit, 1000)}
    options = {"from": args.date_from, "to": args.date_to, "key_id": args.key_id}
    options.update(route=args.route, method=args.method, status=args.status)
    params.update({name: value for name, value in options.items() if value is not None})
    records: list[dict[str, Any]] = []
    while True:
        page = _call(args, "GET", "/v1/audit", params=params).json()
        records.extend(page["records"])
        if not page.get("next_cursor") or len(records) >= args.limit:
            break
        params["cursor"] = page["next_cursor"]
        params["limit"] = min(args.limit - len(records), 1000)
    records = records[: args.limit]
    _print(args, records, "\n".join(_audit_line(r) for r in records) or "no audit records")


def cmd_export_create(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {
        "dataset": args.dataset,
        "format": args.format,
        "from": args.date_from,
        "to": args.date_to,
        "compression": args.compression,
        "notify": args.notify or [],
    }
    filters: dict[str, Any] = {}
    if args.type:
        filters["types"] = args.type
    if args.user_type:
        filters["user_type"] = args.user_type
    if filters:
        body["filters"] = filters
    if args.granularity:
        body["granularity"] = args.granularity
    job = _call(args, "POST", "/v1/exports", json=body).json()
    if args.wait:
        job = _wait(args, job)
        if job["status"] != "succeeded":
            _print(args, job, _export_line(job))
            raise SystemExit(1)
    _print(args, job, _export_line(job))


def cmd_export_show(args: argparse.Namespace) -> None:
    job = _call(args, "GET", f"/v1/exports/{args.export_id}").json()
    if args.wait:
        job = _wait(args, job)
    _print(args, job, _export_line(job))


def cmd_export_list(args: argparse.Namespace) -> None:
    answer = _call(args, "GET", "/v1/exports", params={"limit": str(args.limit)}).json()
    _print(args, answer, "\n".join(_export_line(j) for j in answer["exports"]) or "no exports")


def cmd_export_cancel(args: argparse.Namespace) -> None:
    job = _call(args, "DELETE", f"/v1/exports/{args.export_id}").json()
    _print(args, job, _export_line(job))


def cmd_export_download(args: argparse.Namespace) -> None:
    # httpx loads only for outbound calls (cold start)
    import httpx

    link = _call(args, "GET", f"/v1/exports/{args.export_id}/download")
    if link.status_code != 302:
        raise CliError(f"expected a redirect to the file, got {link.status_code}")
    target = Path(args.output)
    size = 0
    try:
        with httpx.stream("GET", link.headers["location"], timeout=300) as response:
            if response.status_code != 200:
                raise CliError(f"the file could not be fetched: {response.status_code}")
            with target.open("wb") as out:
                for block in response.iter_bytes(1024 * 1024):
                    out.write(block)
                    size += len(block)
    except httpx.HTTPError as exc:
        raise CliError(f"the file could not be fetched: {exc}") from exc
    _print(args, {"path": str(target), "bytes": size}, f"saved {size:,} bytes to {target}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--endpoint-url", help="AWS endpoint (default: .local/stack.json or AWS)")
    common.add_argument("--region", help="AWS region")
    common.add_argument("--stack-name", default="success-metrics", help="CloudFormation stack")
    common.add_argument("--stack-file", help="local stack description (default .local/stack.json)")
    common.add_argument("--no-local", action="store_true", help="ignore .local/stack.json")

    parser = argparse.ArgumentParser(
        prog="smctl",
        description="Operate Success Metrics: organizations, API keys, secrets.",
        parents=[common],
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def command(
        sub: Any,
        name: str,
        func: Callable[[argparse.Namespace], None],
        help_text: str,
        audited: bool = False,
    ) -> argparse.ArgumentParser:
        """A subcommand; `audited` ones change an organization and write an audit record."""
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        p.set_defaults(func=func, audited=audited)
        return p

    org = groups.add_parser("org", help="organizations").add_subparsers(dest="cmd", required=True)
    p = command(
        org, "create", cmd_org_create, "create an organization; prints its secrets once", True
    )
    p.add_argument("name")
    p = command(org, "show", cmd_org_show, "show an organization's settings")
    p.add_argument("org_id")
    p = command(
        org, "set-limits", cmd_org_set_limits, "change rate limits or retention", audited=True
    )
    p.add_argument("org_id")
    p.add_argument("--requests-per-hour", type=_positive)
    p.add_argument("--events-per-hour", type=_positive)
    p.add_argument("--exports-per-hour", type=_positive)
    p.add_argument("--running-exports", type=_positive, help="exports queued or running at once")
    p.add_argument("--retention-days", type=_positive)
    p.add_argument("--erasures-per-hour", type=_positive, help="GDPR erasures requested per hour")

    p = command(
        org, "set-margin", cmd_org_set_margin, "set the gross margin used by CLV", audited=True
    )
    p.add_argument("org_id")
    p.add_argument("margin", help="above 0 and at most 1, e.g. 0.8")
    p = command(
        org,
        "set-slack",
        cmd_org_set_slack,
        "set the Slack webhook for digest and alerts",
        audited=True,
    )
    p.add_argument("org_id")
    p.add_argument("url", help="incoming-webhook URL, or 'none' to remove it")
    p = command(
        org,
        "set-privacy",
        cmd_org_set_privacy,
        "who is anonymised before anything leaves",
        audited=True,
    )
    p.add_argument("org_id")
    p.add_argument(
        "--anonymise-all", type=_on_off, metavar="on|off", help="every user, wherever they are"
    )
    p.add_argument(
        "--anonymise-unknown-country",
        type=_on_off,
        metavar="on|off",
        help="users whose events carry no context.country (on by default)",
    )
    p = command(
        org,
        "set-anonymise-all",
        cmd_org_set_anonymise_all,
        "anonymise every user's events before they leave (on), or only EU users' (off)",
        audited=True,
    )
    p.add_argument("org_id")
    p.add_argument("anonymise_all", type=_on_off, metavar="on|off")
    p = command(
        org, "set-alert", cmd_org_set_alert, "alert when yesterday's METRIC OP VALUE", audited=True
    )
    p.add_argument("org_id")
    p.add_argument("metric", help="e.g. signups, trial_to_paid, active_users, revenue:GBP, cac:GBP")
    p.add_argument("op", choices=["<", "<=", ">", ">="])
    p.add_argument("value")
    p = command(
        org,
        "clear-alerts",
        cmd_org_clear_alerts,
        "remove alerts (all, or one metric's)",
        audited=True,
    )
    p.add_argument("org_id")
    p.add_argument("--metric")

    key = groups.add_parser("key", help="admin API keys").add_subparsers(dest="cmd", required=True)
    p = command(key, "create", cmd_key_create, "create an API key; prints it once", True)
    p.add_argument("org_id")
    p.add_argument(
        "--scope",
        action="append",
        choices=[s.value for s in ALL_SCOPES],
        help="repeat for several (default: all scopes)",
    )
    p.add_argument("--description")
    p = command(key, "list", cmd_key_list, "list an organization's API keys (never the secrets)")
    p.add_argument("org_id")
    p = command(key, "revoke", cmd_key_revoke, "revoke an API key", True)
    p.add_argument("org_id")
    p.add_argument("key_id")

    p = command(groups, "send", cmd_send, "sign an event file and post it (default: demo org)")
    p.add_argument("file", help='JSON file with one event or {"events": [...]}; - for stdin')
    p.add_argument("--org", help="organization id (default: the local stack's demo org)")
    p.add_argument("--secret", help="webhook secret (default: SM_WEBHOOK_SECRET or the demo org's)")
    p.add_argument("--api-url", help="HTTP API base URL (default: the local stack's)")
    p.add_argument("--webhook-id", help="reuse a webhook-id (to try a replay)")
    p.add_argument("--fresh-ids", action="store_true", help="give every event a new id first")
    p.set_defaults(needs_aws=False)

    schedule = groups.add_parser("schedule", help="scheduled jobs").add_subparsers(
        dest="cmd", required=True
    )
    p = command(schedule, "list", cmd_schedule_list, "list the schedules")
    p.set_defaults(needs_aws=False)
    p = command(schedule, "run", cmd_schedule_run, "run a schedule now")
    p.add_argument("name", help="the schedule's event name in template.yaml")
    p.set_defaults(needs_aws=False)

    dest = groups.add_parser("dest", help="destinations").add_subparsers(dest="cmd", required=True)
    p = command(dest, "put", cmd_dest_put, "create or replace a destination", True)
    p.add_argument("org_id")
    p.add_argument("dest_id")
    p.add_argument(
        "--settings",
        required=True,
        help='JSON, e.g. \'{"kind": "ga4", "measurement_id": "G-XXXX", "api_secret": "..."}\'',
    )
    p.add_argument("--name")
    p.add_argument("--disabled", action="store_true")
    p = command(dest, "list", cmd_dest_list, "list destinations (secrets are never shown)")
    p.add_argument("org_id")
    p = command(dest, "remove", cmd_dest_remove, "remove a destination", True)
    p.add_argument("org_id")
    p.add_argument("dest_id")
    p = command(
        dest, "validate", cmd_dest_validate, "check a GA4 destination with /debug/mp/collect"
    )
    p.add_argument("org_id")
    p.add_argument("dest_id")

    dlq = groups.add_parser("dlq", help="dead-letter queues").add_subparsers(
        dest="cmd", required=True
    )
    p = command(dlq, "list", cmd_dlq_list, "count and show dead-lettered messages")
    p.add_argument("--queue", choices=sorted(QUEUES), default="delivery")
    p = command(dlq, "replay", cmd_dlq_replay, "move dead-lettered messages back to their queue")
    p.add_argument("--queue", choices=sorted(QUEUES), default="delivery")
    p.add_argument("--max", type=_positive, default=1000)

    export = groups.add_parser(
        "export", help="exports, through the HTTP API with an admin key"
    ).add_subparsers(dest="cmd", required=True)

    def api_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--api-key", help="admin API key (default: SM_API_KEY or the local demo)")
        p.add_argument("--api-url", help="API base URL (default: SM_API_URL or the local stack)")
        p.set_defaults(needs_aws=False)

    p = command(export, "create", cmd_export_create, "request an export (and --wait for it)")
    p.add_argument("--dataset", choices=["events", "metrics", "summary"], default="events")
    p.add_argument("--format", choices=["csv", "json", "ndjson", "xlsx"], default="csv")
    p.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
    p.add_argument("--compression", choices=["none", "gzip"], default="none")
    p.add_argument("--type", action="append", help="only this event type (repeatable)")
    p.add_argument("--user-type", choices=["supplier", "couple", "staff"])
    p.add_argument("--granularity", choices=["day", "week", "month", "season"])
    p.add_argument("--notify", action="append", help="email the link here (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--timeout", type=_positive, default=3600, help="seconds to --wait")
    api_options(p)
    p = command(export, "show", cmd_export_show, "status and progress of an export")
    p.add_argument("export_id")
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--timeout", type=_positive, default=3600, help="seconds to --wait")
    api_options(p)
    p = command(export, "list", cmd_export_list, "the organization's exports, newest first")
    p.add_argument("--limit", type=_positive, default=20)
    api_options(p)
    p = command(export, "cancel", cmd_export_cancel, "cancel an export, or withdraw its file")
    p.add_argument("export_id")
    api_options(p)
    p = command(export, "download", cmd_export_download, "save an export's file")
    p.add_argument("export_id")
    p.add_argument("-o", "--output", required=True, help="where to save the file")
    api_options(p)

    gdpr = groups.add_parser(
        "gdpr", help="GDPR erasure, through the HTTP API with an admin key"
    ).add_subparsers(dest="cmd", required=True)
    p = command(
        gdpr,
        "erase",
        cmd_gdpr_erase,
        "erase a user, or an anonymous id with --anonymous-id, everywhere (and --wait for it)",
    )
    subject = p.add_mutually_exclusive_group(required=True)
    subject.add_argument("user_id", nargs="?", help="the user's id as the events carry it")
    subject.add_argument(
        "--anonymous-id",
        metavar="ID",
        help="erase someone known only by this anonymous (device or cookie) id instead",
    )
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--timeout", type=_positive, default=3600, help="seconds to --wait")
    api_options(p)
    p = command(gdpr, "erasure", cmd_gdpr_erasure, "progress and receipt of an erasure")
    p.add_argument("erasure_id")
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--timeout", type=_positive, default=3600, help="seconds to --wait")
    api_options(p)

    audit = groups.add_parser(
        "audit", help="the audit log, through the HTTP API with a key that has audit:read"
    ).add_subparsers(dest="cmd", required=True)
    p = command(audit, "list", cmd_audit_list, "audit records, newest first")
    p.add_argument("--from", dest="date_from", help="ISO 8601 date or time")
    p.add_argument("--to", dest="date_to", help="ISO 8601 date or time")
    p.add_argument("--key-id", help="only this key's requests")
    p.add_argument("--route", help="a route template, e.g. /v1/exports/{export_id}")
    p.add_argument("--method", help="GET, PUT, POST, DELETE or CLI")
    p.add_argument("--status", help="an HTTP status (403) or a class (4xx)")
    p.add_argument("--limit", type=_positive, default=100, help="records to show (default 100)")
    api_options(p)

    secret = groups.add_parser("secret", help="webhook signing secrets").add_subparsers(
        dest="cmd", required=True
    )
    p = command(
        secret, "rotate", cmd_secret_rotate, "new webhook secret; the old one lasts 24 h", True
    )
    p.add_argument("org_id")
    return parser


def _run(args: argparse.Namespace) -> None:
    """Run the command; one that changes an organization is written to its audit log first."""
    if not getattr(args, "audited", False):
        args.func(args)
        return

    if args.group == "org" and args.cmd == "create":
        args.org_id = organizations.new_org_id()
    resource = getattr(args, "dest_id", None) or getattr(args, "key_id", None)
    with audit.cli_operation(args.org_id, f"{args.group} {args.cmd}", resource):
        args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    # boto3 and botocore load on first use, not at import (cold start)
    from botocore.exceptions import BotoCoreError, ClientError

    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "needs_aws", True):
            configure(args)
        _run(args)
    except (CliError, SuccessMetricsError) as exc:
        print(f"smctl: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"smctl: AWS refused: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"smctl: cannot reach AWS: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
