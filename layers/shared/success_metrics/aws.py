"""Cached boto3 client factories: created on first use, never at import time.

Endpoints follow boto3's own configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`),
so the same code talks to AWS, to the local stack's moto server or to moto in-process.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sqs import SQSClient


def _config() -> Any:
    # boto3 and botocore load on first use, not at import (cold start)
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
    # boto3 and botocore load on first use, not at import (cold start)
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


@cache
def s3() -> S3Client:

    # boto3 and botocore load on first use, not at import (cold start)
    from botocore.config import Config

    # SigV4 presigned URLs; path-style addressing when an emulator's endpoint is configured
    # (virtual-hosted buckets need DNS that 127.0.0.1 does not have).
    custom = bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))
    config = _config().merge(
        Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if custom else "virtual"},
            read_timeout=60,
        )
    )
    client: S3Client = _session().client("s3", config=config)
    return client


@cache
def ses() -> SESClient:
    client: SESClient = _session().client("ses", config=_config())
    return client


def reset_clients() -> None:
    """Drop cached clients (tests switch between moto backends)."""
    for factory in (dynamodb, sqs, kms, s3, ses, _session):
        factory.cache_clear()


def old_item(error: Exception) -> dict[str, Any]:
    """The item a failed conditional write returned (ReturnValuesOnConditionCheckFailure)."""
    response: dict[str, Any] = getattr(error, "response", {})
    item: dict[str, Any] = response.get("Item", {})
    return item
