"""The metrics API's logic: validate the query, scope it to the caller's organization."""

from __future__ import annotations

from typing import Any

from success_metrics.http import Principal, parse_model
from success_metrics.metrics import cohorts
from success_metrics.metrics import query as metrics_query
from success_metrics.models.organizations import Scope
from success_metrics.stores import organizations


def parse(params: dict[str, str]) -> metrics_query.MetricsQuery:
    return parse_model(metrics_query.MetricsQuery, params, "query")


def get_metrics(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    caller.require(Scope.METRICS_READ)
    query = parse(params)
    org = organizations.get_organization(caller.org_id)
    return metrics_query.metrics(org.org_id, query, org.gross_margin)


def get_cohorts(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    caller.require(Scope.METRICS_READ)
    query = parse_model(cohorts.RangeQuery, params, "query")
    return cohorts.cohorts(caller.org_id, query)


def get_funnel(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    caller.require(Scope.METRICS_READ)
    query = parse_model(cohorts.RangeQuery, params, "query")
    return cohorts.funnel_answer(caller.org_id, query)
