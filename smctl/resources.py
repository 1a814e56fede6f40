"""Where the resources are: environment variables (EVENTS_TABLE, ORGANIZATIONS_TABLE, ...), then
the local stack's `.local/stack.json` (when it exists; `--stack-file` names another), then the
outputs of the CloudFormation stack `--stack-name`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from smctl.options import CliError, options
from success_metrics import aws
from success_metrics.settings import reset_settings

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


def local_stack() -> dict[str, Any]:
    """The running local stack's description, or {} when there is none (or it is ignored)."""
    opts = options()
    stack_file = Path(opts.stack_file) if opts.stack_file else STACK_FILE
    if opts.no_local or opts.endpoint_url or not stack_file.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(stack_file.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {stack_file}: {exc}") from exc
    return data


def configure() -> None:
    """Point the package at the right resources before a command that talks to AWS runs."""
    opts = options()
    if opts.region:
        os.environ["AWS_DEFAULT_REGION"] = opts.region
    local = local_stack()
    endpoint = opts.endpoint_url or local.get("aws_endpoint")
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
    for name, value in (local.get("environment") or {}).items():
        os.environ.setdefault(name, str(value))
    if not all(os.environ.get(name) for name in STACK_OUTPUTS.values()):
        _from_stack_outputs(opts.stack_name)
    reset_settings()
    aws.reset_clients()


def _from_stack_outputs(stack_name: str) -> None:
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
