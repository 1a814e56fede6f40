"""Each function runs under its own template role, and a missing permission fails locally as
it would on AWS (devstack/iam.py: moto judges actions, the recorder resources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from samtranslator.yaml_helper import yaml_parse

from devstack import iam
from devstack.provision import Stack
from devstack.template import TEMPLATE
from success_metrics.stores import organizations
from tests.integration.secured import secured_stack
from tests.support import post_events, sample_event


def _enforcement() -> iam.Enforcement:
    return iam._installed[-1]


def _role_client(role: iam.Role, service: str) -> Any:
    frozen = role.credentials
    return boto3.client(
        service,
        region_name="eu-west-1",
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )


def test_a_function_calls_aws_as_its_own_role(stack: Stack) -> None:
    # Given the stack, when code acts as a function
    with iam.acting_as("ApiAuthorizerFunction"):
        who = boto3.client("sts", region_name="eu-west-1").get_caller_identity()["Arn"]
    # Then AWS sees the function's assumed role, and the operator is the admin user otherwise
    assert who.startswith("arn:aws:sts::123456789012:assumed-role/sm-test-ApiAuthorizerFunction/")
    operator = boto3.client("sts", region_name="eu-west-1").get_caller_identity()["Arn"]
    assert operator == f"arn:aws:iam::123456789012:user/{iam.ADMIN_USER}"


def test_moto_refuses_an_action_the_role_lacks(stack: Stack) -> None:
    role = _enforcement().roles["ApiAuthorizerFunction"]  # reads OrganizationsTable only
    table = stack.physical["OrganizationsTable"]["Ref"]
    client = _role_client(role, "dynamodb")  # no recorder: the emulator alone judges
    client.get_item(TableName=table, Key={"pk": {"S": "x"}, "sk": {"S": "y"}})
    with pytest.raises(ClientError) as refused:
        client.put_item(TableName=table, Item={"pk": {"S": "x"}, "sk": {"S": "y"}})
    # moto answers 403 with its own error code where AWS says AccessDeniedException
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "not authorized to perform: dynamodb:PutItem" in str(refused.value)
    with pytest.raises(ClientError) as refused_queue:
        _role_client(role, "sqs").send_message(
            QueueUrl=stack.physical["SyncQueue"]["QueueUrl"], MessageBody="{}"
        )
    assert refused_queue.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "not authorized to perform: sqs:SendMessage" in str(refused_queue.value)


def test_the_recorder_refuses_a_resource_outside_the_policy(stack: Stack) -> None:
    # GetItem is an action the authorizer has (moto would let it through), but on
    # OrganizationsTable only: the recorder refuses it on EventsTable, as IAM would.
    events = stack.physical["EventsTable"]["Ref"]
    with iam.acting_as("ApiAuthorizerFunction"), pytest.raises(ClientError) as refused:
        boto3.client("dynamodb", region_name="eu-west-1").get_item(
            TableName=events, Key={"pk": {"S": "x"}}
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "dynamodb:GetItem" in error["Message"]
    assert events in error["Message"]
    role = _enforcement().roles["ApiAuthorizerFunction"]
    assert [(a, r) for a, r, _ in role.denied] == [
        ("dynamodb:GetItem", f"arn:aws:dynamodb:eu-west-1:123456789012:table/{events}")
    ]
    role.denied.clear()  # expected here; the fixture fails a test on any other refusal


def _without(template: Path, function: str, table: str, into: Path) -> Path:
    """A copy of the template whose `function` lost its one policy statement on `table`."""
    document = yaml_parse(template.read_text())
    removed = 0
    for policy in document["Resources"][function]["Properties"]["Policies"]:
        statements = policy["Statement"]
        kept = [s for s in statements if {"Fn::GetAtt": [table, "Arn"]} not in _values(s)]
        removed += len(statements) - len(kept)
        policy["Statement"] = kept
    assert removed == 1, "the mutation must remove exactly one statement"
    copy = into / "template.yaml"
    copy.write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


def _values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *[v for item in value.values() for v in _values(item)]]
    if isinstance(value, list):
        return [v for item in value for v in _values(item)]
    return [value]


def test_a_statement_removed_from_the_template_fails_its_path_locally(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a template whose ingestion function lost its EventsTable statement
    mutated = _without(TEMPLATE, "WebhookReceiveFunction", "EventsTable", tmp_path)
    with secured_stack(monkeypatch, template_path=mutated) as (_, enforcement):
        from webhook_receive import app

        org = organizations.create_organization("Mutation Weddings")
        # When events are posted
        answer = post_events(app.lambda_handler, org.org_id, org.webhook_secret, sample_event())
        # Then ingestion fails as it would on AWS, refused on the events table
        denied = enforcement.roles["WebhookReceiveFunction"].denied
    assert answer.status >= 500, answer
    assert denied
    assert all("EventsTable" in resource for _, resource, _ in denied), denied
    assert {action for action, _, _ in denied} <= {"dynamodb:PutItem", "dynamodb:BatchWriteItem"}


def test_a_function_never_reads_what_another_decrypted(stack: Stack) -> None:
    # Given a secret decrypted (and cached) by a function that may decrypt it
    from success_metrics import secret_box

    sealed = secret_box.encrypt("hook-secret", "org_cache")
    with iam.acting_as("WebhookReceiveFunction"):
        assert secret_box.decrypt(sealed, "org_cache") == "hook-secret"
    # When a function without kms:Decrypt asks for it in the same process
    with iam.acting_as("ApiAuthorizerFunction"), pytest.raises(ClientError) as refused:
        secret_box.decrypt(sealed, "org_cache")
    # Then it is refused, as in its own Lambda instance, not served from the other's cache
    assert "kms:Decrypt" in str(refused.value)
    _enforcement().roles["ApiAuthorizerFunction"].denied.clear()
