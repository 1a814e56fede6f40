"""The template's roles, alarm encryption and tracing settings, read as CloudFormation would
(samtranslator), plus the IAM rules the local enforcement applies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack import deploy_check, iam
from devstack.template import TEMPLATE, load


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load()


def test_the_roles_grant_exactly_the_recorded_calls() -> None:
    table = json.loads(deploy_check.TABLE.read_text())
    assert deploy_check.problems(TEMPLATE, table, runs=None) == []


def test_no_role_grants_what_nothing_needs() -> None:
    for function, statements in iam.function_policies().items():
        for statement in statements:
            actions = iam._listed(statement["Action"])
            assert not set(actions) & set(deploy_check.FORBIDDEN), function
            assert "*" not in actions, function


def test_tracer_never_records_responses_or_errors(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
    for name, resource in template["Resources"].items():
        own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        assert own.get("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "false") == "false", name


def test_the_alarm_topic_key_lets_cloudwatch_publish(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    key_ref = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    # A customer-managed key of this template: the AWS managed alias/aws/sns cannot be used
    # by CloudWatch alarms.
    assert isinstance(key_ref, dict)
    key = resources[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    statements = key["Properties"]["KeyPolicy"]["Statement"]

    def allowed(service: str) -> set[str]:
        return {
            action
            for s in statements
            if s["Effect"] == "Allow" and s.get("Principal", {}).get("Service") == service
            for action in iam._listed(s["Action"])
        }

    for service in ("cloudwatch.amazonaws.com", "sns.amazonaws.com"):
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed(service), service
    assert any(
        s.get("Principal", {}).get("AWS", {}) for s in statements if s["Action"] == "kms:*"
    ), "the account must keep administering the key"


ARNS = iam.Arns("eu-west-1", "123456789012")
TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/"


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        (
            "dynamodb",
            "Query",
            {"TableName": "events", "IndexName": "ByDay"},
            [("dynamodb:Query", TABLE + "events/index/ByDay")],
        ),
        (
            "dynamodb",
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "a"}},
                    {"ConditionCheck": {"TableName": "b"}},
                ]
            },
            [("dynamodb:PutItem", TABLE + "a"), ("dynamodb:ConditionCheckItem", TABLE + "b")],
        ),
        (
            "dynamodb",
            "BatchWriteItem",
            {"RequestItems": {"a": [], "b": []}},
            [("dynamodb:BatchWriteItem", TABLE + "a"), ("dynamodb:BatchWriteItem", TABLE + "b")],
        ),
        (
            "s3",
            "UploadPartCopy",
            {"Bucket": "x", "Key": "out", "CopySource": {"Bucket": "x", "Key": "in"}},
            [("s3:PutObject", "arn:aws:s3:::x/out"), ("s3:GetObject", "arn:aws:s3:::x/in")],
        ),
        (
            "s3",
            "ListParts",
            {"Bucket": "x", "Key": "k"},
            [("s3:ListMultipartUploadParts", "arn:aws:s3:::x/k")],
        ),
        (
            "s3",
            "ListMultipartUploads",
            {"Bucket": "x"},
            [("s3:ListBucketMultipartUploads", "arn:aws:s3:::x")],
        ),
        (
            "sqs",
            "SendMessageBatch",
            {"QueueUrl": "http://127.0.0.1:5000/123456789012/q"},
            [("sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:q")],
        ),
        (
            "kms",
            "Decrypt",
            {"KeyId": "k-1"},
            [("kms:Decrypt", "arn:aws:kms:eu-west-1:123456789012:key/k-1")],
        ),
        (
            "ses",
            "SendRawEmail",
            {"RawMessage": {"Data": b"From: Exports <ex@example.com>\r\nTo: a@b.c\r\n\r\nhi"}},
            [("ses:SendRawEmail", "arn:aws:ses:eu-west-1:123456789012:identity/ex@example.com")],
        ),
    ],
)
def test_operations_map_to_the_iam_actions_aws_checks(
    service: str, operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    got = iam.needs(service, operation, params, ARNS)
    assert [(n.action, n.resource) for n in got] == expected


def test_policy_evaluation_follows_iam() -> None:
    policy = iam.Policy(
        [
            iam.Statement("Allow", ("dynamodb:Get*", "SQS:SendMessage"), (TABLE + "t*",)),
            iam.Statement("Deny", ("dynamodb:GetItem",), (TABLE + "top-secret",)),
        ]
    )
    assert policy.allows("dynamodb:GetItem", TABLE + "table")
    assert policy.allows("sqs:sendmessage", TABLE + "t1")  # actions ignore case
    assert not policy.allows("dynamodb:GetItem", TABLE + "T1")  # resources do not
    assert not policy.allows("dynamodb:PutItem", TABLE + "table")
    assert not policy.allows("dynamodb:GetItem", TABLE + "top-secret")  # an explicit deny wins
    assert policy.allows_action("dynamodb:GetRecords")


def test_the_rehearsal_fails_a_role_that_lost_a_statement_or_gained_one(tmp_path: Path) -> None:
    import yaml
    from samtranslator.yaml_helper import yaml_parse

    document = yaml_parse(TEMPLATE.read_text())
    statements = document["Resources"]["PlatformSyncFunction"]["Properties"]["Policies"][0][
        "Statement"
    ]
    # Given the delivery worker without its suppression-list read, plus a grant nothing uses
    kept = [s for s in statements if s["Sid"] != "SuppressionList"]
    assert len(kept) == len(statements) - 1
    kept.append(
        {
            "Sid": "Unused",
            "Effect": "Allow",
            "Action": ["s3:PutObjectAcl"],
            "Resource": {"Fn::Sub": "${ExportsBucket.Arn}/*"},
        }
    )
    document["Resources"]["PlatformSyncFunction"]["Properties"]["Policies"][0]["Statement"] = kept
    mutated = tmp_path / "template.yaml"
    mutated.write_text(yaml.safe_dump(document, sort_keys=False))
    table = json.loads(deploy_check.TABLE.read_text())
    # When the rehearsal reads it
    found = deploy_check.problems(mutated, table, runs=None)
    # Then it names the call AWS would refuse, the needless grant and the forbidden one
    assert any(
        "PlatformSyncFunction: its code calls dynamodb:BatchGetItem" in p and "PrivacyTable" in p
        for p in found
    ), found
    assert any("grants s3:PutObjectAcl, which nothing may have" in p for p in found), found
    assert any("no recorded call needs" in p and "s3:PutObjectAcl" in p for p in found), found


def test_the_consumers_know_each_queue_s_last_receive(template: dict[str, Any]) -> None:
    """`dead_letters.MAX_RECEIVES` is each tenant queue's maxReceiveCount, and every function
    consuming a tenant queue records its dead letters for that queue's kind."""
    from success_metrics import dead_letters

    resources = template["Resources"]
    queues = {"sync": "SyncQueue", "delivery": "DeliveryQueue", "metrics": "MetricsQueue",
              "export": "ExportQueue", "gdpr": "GdprQueue"}  # fmt: skip
    assert set(queues) == set(dead_letters.QUEUES)
    for kind, queue in queues.items():
        policy = resources[queue]["Properties"]["RedrivePolicy"]
        assert dead_letters.MAX_RECEIVES[kind] == policy["maxReceiveCount"], kind
    consumers = {
        event["Properties"]["Queue"]["Fn::GetAtt"][0]: resource["Properties"]["CodeUri"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    }
    for kind, queue in queues.items():
        code = (TEMPLATE.parent / consumers[queue] / "app.py").read_text()
        assert f'"{kind}"' in code, (queue, consumers[queue])
        assert "dead_letters" in code, (queue, consumers[queue])
