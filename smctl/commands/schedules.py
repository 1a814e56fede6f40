"""`smctl schedule`: the template's EventBridge schedules, listed and run on demand (through the
local stack's control port, or on AWS by invoking the rule's target as EventBridge would)."""

from __future__ import annotations

import json
from typing import Any

import click
import httpx

from smctl.options import CliError, command, group, options, output
from smctl.resources import configure, local_stack

schedule = group("schedule", "scheduled jobs")


def _control(method: str, path: str) -> Any:
    """The local stack's answer, or None when there is no local stack."""
    local = local_stack()
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


@command(schedule, "list", help="list the schedules")
def list_schedules() -> None:
    status = _control("GET", "/status")
    if status is None:
        configure()
        schedules = [{"name": r["logical_id"], "rule": r["physical_id"]} for r in _aws_rules()]
    else:
        schedules = status["schedules"]
    output(
        schedules,
        "\n".join(f"{s['name']}  {s.get('expression', s.get('rule'))}" for s in schedules)
        or "no schedules",
    )


@command(schedule, help="run a schedule now")
@click.argument("name")
def run(name: str) -> None:
    """NAME is the schedule's event name in template.yaml."""
    answer = _control("POST", f"/schedules/{name}/run")
    if answer is None:
        configure()
        answer = _run_on_aws(name)
    output(answer, f"ran {name}: {json.dumps(answer.get('result'))}")


def _aws_rules() -> list[dict[str, str]]:
    import boto3

    resources = boto3.client("cloudformation").describe_stack_resources(
        StackName=options().stack_name
    )
    return [
        {"logical_id": r["LogicalResourceId"], "physical_id": r["PhysicalResourceId"]}
        for r in resources["StackResources"]
        if r["ResourceType"] == "AWS::Events::Rule"
    ]


def _run_on_aws(name: str) -> dict[str, Any]:
    """Invoke the rule's target function with the event EventBridge would send."""
    import boto3

    rules = _aws_rules()
    matching = [r for r in rules if name in r["logical_id"]]
    if len(matching) != 1:
        names = ", ".join(r["logical_id"] for r in rules) or "none"
        raise CliError(f"{name!r} matches {len(matching)} schedule rules (rules: {names})")
    rule = matching[0]["physical_id"]
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
        raise CliError(f"{name} failed: {body[:300]}")
    return {"schedule": name, "result": json.loads(body or "null")}
