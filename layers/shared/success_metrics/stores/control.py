"""The control table (`ControlTable`, `pk` only, TTL on `expires_at`) as Powertools' persistence
layers use it: idempotency records of `(org, webhook-id)` replays and circuit-breaker states.
(Rate-limit windows, the table's third tenant, are in `stores.rate_limit`.) Built on first use:
the Powertools modules they import are loaded only by the functions that need them."""

from __future__ import annotations

from typing import Any

from success_metrics import aws
from success_metrics.settings import get_settings


def idempotency_persistence() -> Any:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=get_settings().control_table,
        key_attr="pk",
        expiry_attr="expires_at",
        boto3_client=aws.dynamodb(),
    )


def breaker_persistence() -> Any:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
        CircuitBreakerDynamoDBPersistence,
    )

    return CircuitBreakerDynamoDBPersistence(
        table_name=get_settings().control_table,
        key_attr="pk",
        expiry_attr="expires_at",
        boto3_client=aws.dynamodb(),
    )
