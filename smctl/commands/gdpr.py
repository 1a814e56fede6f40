"""`smctl gdpr`: erasure of a user or an anonymous id, through the HTTP API with an admin key."""

from __future__ import annotations

import click

from smctl.api import Api, Job, api_options, wait_options
from smctl.options import command, group, output
from smctl.progress import JobKind, Reading

gdpr = group("gdpr", "GDPR erasure, through the HTTP API with an admin key")


def line(job: Job) -> str:
    systems = "  ".join(
        f"{name}={s['status']}" + (f"({s['count']})" if s["count"] else "")
        for name, s in job["systems"].items()
    )
    return f"{job['erasure_id']}  {job['status']:<15} {systems}"


FINISHED = ("done", "not_configured", "failed")


def reading(job: Job) -> Reading:
    systems = job["systems"]
    now = [name for name, s in systems.items() if s["status"] == "running"]
    doing = f": {', '.join(now)}" if now else ""
    return Reading(
        done=float(sum(1 for s in systems.values() if s["status"] in FINISHED)),
        total=float(len(systems)) or None,
        rows=sum(int(s["count"]) for s in systems.values()),
        rows_unit="items",
        bytes=None,
        label=f"{job['erasure_id']} {job['status']}{doing}",
    )


KIND = JobKind(
    path="/v1/gdpr/erasures/{}",
    ident="erasure_id",
    noun="erasure",
    show_command="smctl gdpr erasure {}",
    line=line,
    read=reading,
)


def _finish(api: Api, job: Job, wait: bool, timeout: int) -> None:
    if wait:
        job = api.wait(job, KIND, timeout)
        if job["status"] != "succeeded":
            output(job, line(job))
            raise SystemExit(1)
    output(job, line(job))


@command(
    gdpr,
    help="erase a user, or an anonymous id with --anonymous-id, everywhere (and --wait for it)",
)
@click.argument("user_id", required=False)
@click.option(
    "--anonymous-id",
    metavar="ID",
    help="erase someone known only by this anonymous (device or cookie) id instead",
)
@wait_options
@api_options
def erase(
    user_id: str | None,
    anonymous_id: str | None,
    wait: bool,
    timeout: int,
    api_key: str | None,
    api_url: str | None,
) -> None:
    """USER_ID is the user's id as the events carry it."""
    if (user_id is None) == (anonymous_id is None):
        raise click.UsageError("give the user's id or --anonymous-id ID (one of them, not both)")
    subject = {"anonymous_id": anonymous_id} if anonymous_id is not None else {"user_id": user_id}
    api = Api(api_key, api_url)
    _finish(api, api.json("POST", "/v1/gdpr/erasures", json=subject), wait, timeout)


@command(gdpr, help="progress and receipt of an erasure")
@click.argument("erasure_id")
@wait_options
@api_options
def erasure(
    erasure_id: str, wait: bool, timeout: int, api_key: str | None, api_url: str | None
) -> None:
    api = Api(api_key, api_url)
    _finish(api, api.json("GET", f"/v1/gdpr/erasures/{erasure_id}"), wait, timeout)
