"""Deployment rehearsal for IAM: the template's roles against the calls the code makes.

    python -m devstack.deploy_check [--template T] [--table docs/iam-calls.json] [--runs DIR]
    python -m devstack.deploy_check --write     # docs/iam-calls.json from the last test run

`docs/iam-calls.json` is the recorder's table (devstack/iam.py): every IAM action and resource
each function needed during the integration and end-to-end tests, physical names replaced by
the template's logical ids. The check expands the template's roles with samtranslator, as
CloudFormation would create them, and fails when

- a recorded call is not allowed by its function's role (it would be refused on AWS);
- a role grants an action on a resource that no recorded call needs (least privilege), other
  than what the AWS managed policies SAM attaches grant (logs, X-Ray, the SQS event source);
- the calls recorded by the last test run are not all in the committed table (the table, and
  so this check, would be out of date).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from devstack import iam
from devstack.template import TEMPLATE, Resolver, load

TABLE = TEMPLATE.parent / "docs" / "iam-calls.json"
# Never to be granted by any role (found granted once, needed by nothing).
FORBIDDEN = ("s3:PutObjectAcl", "s3:PutLifecycleConfiguration", "ses:VerifyEmailIdentity")

Table = dict[str, list[dict[str, str]]]
# Calls the code can make that no test reaches, granted on purpose: (function, action,
# resource) and why. Keep this short; a test that reaches the call is better.
UNREACHED: dict[tuple[str, str, str], str] = {
    (
        "WebhookReceiveFunction",
        "dynamodb:GetItem",
        "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ControlTable}",
    ): "Powertools idempotency reads a record whose conditional write failed without returning "
    "it (DynamoDB always returns it with ReturnValuesOnConditionCheckFailure, moto too)",
}


def symbolic_resolver(template: dict[str, Any]) -> Resolver:
    """Resolves the template with `${LogicalId}` for every physical name, as the table has."""
    region, account = "${AWS::Region}", "${AWS::AccountId}"
    physical: dict[str, dict[str, str]] = {}
    for logical, resource in template["Resources"].items():
        name = "${" + logical + "}"
        kind = resource["Type"]
        arn = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{region}:{account}:key/{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{account}:{name}",
        }.get(kind, f"arn:aws:{kind}:{region}:{account}:{name}")
        ref = arn if kind == "AWS::SNS::Topic" else name
        physical[logical] = {
            "Ref": ref,
            "Arn": arn,
            "QueueName": name,
            "QueueUrl": f"https://sqs.{region}.amazonaws.com/{account}/{name}",
            "KeyId": name,
            "TopicArn": arn,
        }
    return Resolver(
        template,
        physical,
        {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "${AWS::StackName}",
        },
    )


def merged_runs(directory: Path) -> Table:
    rows: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(directory.glob("*.json")):
        for function, calls in json.loads(path.read_text()).items():
            found = rows.setdefault(function, set())
            found.update((c["action"], iam.s3_folder(c["resource"])) for c in calls)
    return {
        f: [{"action": a, "resource": r} for a, r in sorted(calls)]
        for f, calls in sorted(rows.items())
    }


def problems(template_path: Path, table: Table, runs: Table | None) -> list[str]:
    template = load(template_path)
    resolver = symbolic_resolver(template)
    raw = iam.function_policies(template_path)
    managed = {
        json.dumps(s, sort_keys=True) for docs in iam.MANAGED_POLICIES.values() for s in docs
    }
    found: list[str] = []
    for function, statements in sorted(raw.items()):
        policy = iam.Policy([iam.Statement.of(s, resolver) for s in statements])
        calls = table.get(function, []) + [
            {"action": a, "resource": r} for (f, a, r) in UNREACHED if f == function
        ]
        for call in calls:
            if not policy.allows(call["action"], call["resource"]):
                found.append(
                    f"{function}: its code calls {call['action']} on {call['resource']}, "
                    "which its role does not allow (AWS would answer AccessDenied)"
                )
        for raw_statement in statements:
            if json.dumps(raw_statement, sort_keys=True) in managed:
                continue
            statement = iam.Statement.of(raw_statement, resolver)
            for action in statement.actions:
                if action in FORBIDDEN:
                    found.append(f"{function}: grants {action}, which nothing may have")
                for resource in statement.resources:
                    one = iam.Policy([iam.Statement("Allow", (action,), (resource,))])
                    if not any(one.allows(c["action"], c["resource"]) for c in calls):
                        found.append(
                            f"{function}: grants {action} on {resource}, which no recorded "
                            "call needs (least privilege: remove it)"
                        )
    for function in sorted(table):
        if function not in raw:
            found.append(f"{function}: in the table but not a function of the template")
    if runs is not None:
        # Runs of other templates (the end-to-end probe) are not this template's business.
        for function, calls in sorted((f, c) for f, c in runs.items() if f in raw):
            known = {(c["action"], c["resource"]) for c in table.get(function, [])}
            for call in calls:
                if (call["action"], call["resource"]) not in known:
                    found.append(
                        f"{function}: the last test run called {call['action']} on "
                        f"{call['resource']}, which docs/iam-calls.json does not list "
                        "(run `make iam-table` and review the change)"
                    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.deploy_check", description=__doc__)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--runs", type=Path, default=iam.calls_dir(), help="recorded runs")
    parser.add_argument("--write", action="store_true", help="write the table from the runs")
    args = parser.parse_args(argv)
    runs = merged_runs(args.runs) if args.runs.is_dir() else None
    if args.write:
        if not runs:
            print(f"no recorded runs in {args.runs}: run the tests first", file=sys.stderr)
            return 1
        own = iam.function_policies(args.template)  # not the end-to-end probe's functions
        runs = {function: calls for function, calls in runs.items() if function in own}
        args.table.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.table}: {sum(len(c) for c in runs.values())} calls")
        return 0
    table: Table = json.loads(args.table.read_text())
    found = problems(args.template, table, runs)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"deploy check: {len(found)} problem(s)", file=sys.stderr)
        return 1
    count = sum(len(c) for c in table.values())
    print(f"deploy check: {len(table)} roles grant exactly the {count} recorded calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
