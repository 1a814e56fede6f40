"""The emulator's two speed-ups answer what moto itself answers: the memoized backend lookup,
for every host, and one backup per table and transaction, for a committed and a cancelled
transaction."""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from devstack import emulator

HOSTS = [
    None,
    "moto_api",
    "127.0.0.1:4566",
    "localhost:3000",
    "dynamodb.eu-west-1.amazonaws.com",
    "sqs.eu-west-1.amazonaws.com",
    "s3.amazonaws.com",
    "bucket.s3.eu-west-1.amazonaws.com",
    "kms.eu-west-1.amazonaws.com",
    "email.eu-west-1.amazonaws.com",
    "sts.amazonaws.com",
    "dynamodb",
    "sqs",
]


def test_the_memoized_lookup_answers_as_moto_does_and_asks_it_once_per_host() -> None:
    plain = DomainDispatcherApplication(create_backend_app)
    expected = {host: plain.get_backend_for_host(host) for host in HOSTS}
    original = DomainDispatcherApplication.get_backend_for_host
    asked: list[str | None] = []

    def counting(self: DomainDispatcherApplication, host: str | None) -> object:
        asked.append(host)
        return original(self, host)

    DomainDispatcherApplication.get_backend_for_host = counting  # type: ignore[method-assign]
    try:
        emulator._memoize_backend_lookup()
        app = DomainDispatcherApplication(create_backend_app)
        for _ in range(3):
            assert {host: app.get_backend_for_host(host) for host in HOSTS} == expected
        emulator._memoize_backend_lookup()  # idempotent: not wrapped twice
        assert app.get_backend_for_host("127.0.0.1:4566") == expected["127.0.0.1:4566"]
    finally:
        DomainDispatcherApplication.get_backend_for_host = original  # type: ignore[method-assign]
    assert sorted(asked, key=str) == sorted(HOSTS, key=str)


def _transactions(client: Any) -> list[Any]:
    """A committed 60-action transaction, then one cancelled by its 31st action's condition:
    what each answered, and the table after each."""
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName="t", Item={"pk": {"S": "guard"}, "n": {"N": "1"}})

    def add(i: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": "t",
                "Key": {"pk": {"S": f"item{i}"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }

    def table() -> list[Any]:
        return sorted(client.scan(TableName="t")["Items"], key=lambda i: i["pk"]["S"])

    seen: list[Any] = []
    client.transact_write_items(TransactItems=[add(i) for i in range(60)])
    seen.append(table())
    guard = {
        "ConditionCheck": {
            "TableName": "t",
            "Key": {"pk": {"S": "guard"}},
            "ConditionExpression": "n = :two",
            "ExpressionAttributeValues": {":two": {"N": "2"}},
        }
    }
    actions = [add(i) for i in range(30)] + [guard] + [add(i) for i in range(30, 60)]
    try:
        client.transact_write_items(TransactItems=actions)
    except client.exceptions.TransactionCanceledException as exc:
        seen.append([r.get("Code") for r in exc.response["CancellationReasons"]])
    seen.append(table())
    return seen


def test_transactions_answer_the_same_with_one_backup_per_table() -> None:
    import copy

    import boto3
    from moto import mock_aws
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    def run() -> list[Any]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="eu-west-1")
            return _transactions(client)

    plain = run()
    copies: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        def deepcopy(self, value: Any, memo: Any = None) -> Any:
            if isinstance(value, Table):
                copies.append(id(value))
            return copy.deepcopy(value, memo)

    original = models.DynamoDBBackend.transact_write_items
    view = emulator._OneCopyPerTable(Counting())
    models.copy = view  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = view.transaction(original)  # type: ignore[method-assign]
    try:
        once = run()
    finally:
        models.copy = copy  # type: ignore[assignment]
        models.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    assert once == plain
    assert plain[1] == ["None"] * 30 + ["ConditionalCheckFailed"] + ["None"] * 30
    assert plain[2] == plain[0]  # the cancelled transaction left nothing behind
    assert len(copies) == 2  # one backup per transaction, not one per action (121)
