"""`smctl audit`: the audit log, through the HTTP API with a key that has audit:read."""

from __future__ import annotations

from typing import Any

import click

from smctl.api import Api, api_options
from smctl.options import POSITIVE, command, group, output

audit = group("audit", "the audit log, through the HTTP API with a key that has audit:read")


def line(record: dict[str, Any]) -> str:
    status = record.get("status", "…")
    resource = f"  {record['resource_id']}" if record.get("resource_id") else ""
    return (
        f"{record['at']}  {record['key_id']:<24} {record['method']:<6} {status!s:<4} "
        f"{record['route']}{resource}"
    )


@command(audit, "list", help="audit records, newest first")
@click.option("--from", "date_from", help="ISO 8601 date or time")
@click.option("--to", "date_to", help="ISO 8601 date or time")
@click.option("--key-id", help="only this key's requests")
@click.option("--route", help="a route template, e.g. /v1/exports/{export_id}")
@click.option("--method", help="GET, PUT, POST, DELETE or CLI")
@click.option("--status", help="an HTTP status (403) or a class (4xx)")
@click.option("--limit", type=POSITIVE, default=100, help="records to show (default 100)")
@api_options
def list_records(
    date_from: str | None,
    date_to: str | None,
    key_id: str | None,
    route: str | None,
    method: str | None,
    status: str | None,
    limit: int,
    api_key: str | None,
    api_url: str | None,
) -> None:
    api = Api(api_key, api_url)
    params: dict[str, Any] = {"limit": min(limit, 1000)}
    filters = {"from": date_from, "to": date_to, "key_id": key_id, "route": route}
    filters.update(method=method, status=status)
    params.update({name: value for name, value in filters.items() if value is not None})
    records: list[dict[str, Any]] = []
    while True:
        page = api.json("GET", "/v1/audit", params=params)
        records.extend(page["records"])
        if not page.get("next_cursor") or len(records) >= limit:
            break
        params["cursor"] = page["next_cursor"]
        params["limit"] = min(limit - len(records), 1000)
    records = records[:limit]
    output(records, "\n".join(line(r) for r in records) or "no audit records")
