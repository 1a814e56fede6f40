"""`smctl export`: exports, through the HTTP API with an admin key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import httpx

from smctl.api import Api, Job, api_options, wait_options
from smctl.options import POSITIVE, CliError, command, group, output
from smctl.progress import JobKind, Reading

export = group("export", "exports, through the HTTP API with an admin key")


def line(job: Job) -> str:
    progress = job["progress"]
    percent = "" if progress["percent"] is None else f" {progress['percent']:.0f}%"
    text = (
        f"{job['id']}  {job['status']}{percent}  {job['dataset']} {job['format']} "
        f"{job['range']['from']}..{job['range']['to']}  {progress['rows']:,} rows"
    )
    if job.get("error"):
        text += f"  error: {job['error']}"
    return text


def reading(job: Job) -> Reading:
    progress = job["progress"]
    percent = progress["percent"]
    return Reading(
        done=0.0 if percent is None else float(percent),
        total=None if percent is None else 100.0,
        rows=int(progress["rows"]),
        rows_unit="rows",
        bytes=progress.get("bytes"),
        label=f"{job['id']} {job['status']} {job['dataset']} {job['format']}",
    )


KIND = JobKind(
    path="/v1/exports/{}",
    ident="id",
    noun="export",
    show_command="smctl export show {}",
    line=line,
    read=reading,
)


def _wait(api: Api, job: Job, timeout: int) -> Job:
    return api.wait(job, KIND, timeout)


@command(export, help="request an export (and --wait for it)")
@click.option("--dataset", type=click.Choice(["events", "metrics", "summary"]), default="events")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json", "ndjson", "xlsx"]), default="csv"
)
@click.option("--from", "date_from", required=True, help="first day, YYYY-MM-DD")
@click.option("--to", "date_to", required=True, help="last day, YYYY-MM-DD")
@click.option("--compression", type=click.Choice(["none", "gzip"]), default="none")
@click.option("--type", "types", multiple=True, help="only this event type (repeatable)")
@click.option("--user-type", type=click.Choice(["supplier", "couple", "staff"]))
@click.option("--granularity", type=click.Choice(["day", "week", "month", "season"]))
@click.option("--notify", multiple=True, help="email the link here (repeatable)")
@wait_options
@api_options
def create(
    dataset: str,
    fmt: str,
    date_from: str,
    date_to: str,
    compression: str,
    types: tuple[str, ...],
    user_type: str | None,
    granularity: str | None,
    notify: tuple[str, ...],
    wait: bool,
    timeout: int,
    api_key: str | None,
    api_url: str | None,
) -> None:
    body: dict[str, Any] = {
        "dataset": dataset,
        "format": fmt,
        "from": date_from,
        "to": date_to,
        "compression": compression,
        "notify": list(notify),
    }
    filters = {"types": list(types), "user_type": user_type}
    if any(filters.values()):
        body["filters"] = {name: value for name, value in filters.items() if value}
    if granularity:
        body["granularity"] = granularity
    api = Api(api_key, api_url)
    job = api.json("POST", "/v1/exports", json=body)
    if wait:
        job = _wait(api, job, timeout)
        if job["status"] != "succeeded":
            output(job, line(job))
            raise SystemExit(1)
    output(job, line(job))


@command(export, help="status and progress of an export")
@click.argument("export_id")
@wait_options
@api_options
def show(
    export_id: str, wait: bool, timeout: int, api_key: str | None, api_url: str | None
) -> None:
    api = Api(api_key, api_url)
    job = api.json("GET", f"/v1/exports/{export_id}")
    if wait:
        job = _wait(api, job, timeout)
    output(job, line(job))


@command(export, "list", help="the organization's exports, newest first")
@click.option("--limit", type=POSITIVE, default=20)
@api_options
def list_exports(limit: int, api_key: str | None, api_url: str | None) -> None:
    answer = Api(api_key, api_url).json("GET", "/v1/exports", params={"limit": str(limit)})
    output(answer, "\n".join(line(j) for j in answer["exports"]) or "no exports")


@command(export, help="cancel an export, or withdraw its file")
@click.argument("export_id")
@api_options
def cancel(export_id: str, api_key: str | None, api_url: str | None) -> None:
    job = Api(api_key, api_url).json("DELETE", f"/v1/exports/{export_id}")
    output(job, line(job))


@command(export, help="save an export's file")
@click.argument("export_id")
@click.option("-o", "--output", "target", required=True, help="where to save the file")
@api_options
def download(export_id: str, target: str, api_key: str | None, api_url: str | None) -> None:
    link = Api(api_key, api_url).call("GET", f"/v1/exports/{export_id}/download")
    if link.status_code != 302:
        raise CliError(f"expected a redirect to the file, got {link.status_code}")
    path = Path(target)
    size = 0
    try:
        with httpx.stream("GET", link.headers["location"], timeout=300) as response:
            if response.status_code != 200:
                raise CliError(f"the file could not be fetched: {response.status_code}")
            with path.open("wb") as out:
                for block in response.iter_bytes(1024 * 1024):
                    out.write(block)
                    size += len(block)
    except httpx.HTTPError as exc:
        raise CliError(f"the file could not be fetched: {exc}") from exc
    output({"path": str(path), "bytes": size}, f"saved {size:,} bytes to {path}")
