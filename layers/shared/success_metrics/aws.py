"""Cached boto3 client factories: created on first use, never at import time.

Endpoints follow boto3's own configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`),
so the same code talks to AWS, to the local stack's moto server or to moto in-process.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient


def _config() -> Any:
    from botocore.config import Config

    # Standard retry mode retries throttling with backoff; connect/read timeouts keep a stuck
    # dependency from eating a whole Lambda invocation.
    return Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=3,
        read_timeout=10,
        max_pool_connections=32,
    )


@cache
def _session() -> Any:
    import boto3

    return boto3.session.Session()


@cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _session().client("dynamodb", config=_config())
    return client


@cache
def sqs() -> SQSClient:
    client: SQSClient = _session().client("sqs", config=_config())
    return client


@cache
def kms() -> KMSClient:
    client: KMSClient = _session().client("kms", config=_config())
    return client


def reset_clients() -> None:
    """Drop cached clients (tests switch between moto backends)."""
    for factory in (dynamodb, sqs, kms, _session):
        factory.cache_clear()


def old_item(error: Exception) -> dict[str, Any]:
    """The item a failed conditional write returned (ReturnValuesOnConditionCheckFailure)."""
    response: dict[str, Any] = getattr(error, "response", {})
    item: dict[str, Any] = response.get("Item", {})
    return item
