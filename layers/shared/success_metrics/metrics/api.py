"""The metrics API's logic: validate the query, scope it to the caller's organization."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from success_metrics import organizations
from success_metrics.errors import ValidationFailedError
from success_metrics.http import Principal
from success_metrics.metrics import query as metrics_query
from success_metrics.models.organizations import Scope


def parse(params: dict[str, str]) -> metrics_query.MetricsQuery:
    try:
        return metrics_query.MetricsQuery.model_validate(params)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ValidationFailedError(
            "the query is not valid: "
            + "; ".join(f"{'.'.join(e['loc']) or 'query'}: {e['msg']}" for e in errors),
            errors=errors,
        ) from exc


def get_metrics(caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    caller.require(Scope.METRICS_READ)
    query = parse(params)
    org = organizations.get_organization(caller.org_id)
    return metrics_query.metrics(org.org_id, query, org.gross_margin)
