"""The HTTP API, with an admin key: what the export, GDPR and audit commands go through."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click
import httpx

from smctl.options import POSITIVE, CliError, options
from smctl.progress import JobKind, StoppedWaiting, Waiter
from smctl.resources import local_stack

Job = dict[str, Any]


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--api-key and --api-url, on every command that goes through the HTTP API."""
    command = click.option(
        "--api-url", help="API base URL (default: SM_API_URL or the local stack)"
    )(command)
    return click.option("--api-key", help="admin API key (default: SM_API_KEY or the local demo)")(
        command
    )


def _target(api_key: str | None, api_url: str | None) -> tuple[str, dict[str, str]]:
    """The API's URL and the Authorization header of an admin key."""
    local = local_stack()
    orgs = local.get("organizations") or [{}]
    key = api_key or os.environ.get("SM_API_KEY") or orgs[0].get("api_key")
    url = api_url or os.environ.get("SM_API_URL") or local.get("api_url")
    if not (key and url):
        raise CliError(
            "give --api-key (or SM_API_KEY) and --api-url (or SM_API_URL), "
            "or start the local stack so .local/stack.json provides them"
        )
    return str(url).rstrip("/"), {"Authorization": f"Bearer {key}"}


class Api:
    """Calls to the HTTP API; a 4xx or 5xx answer becomes a one-line CliError."""

    def __init__(self, api_key: str | None, api_url: str | None) -> None:
        self.url, self.headers = _target(api_key, api_url)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(
                method, self.url + path, headers=self.headers, timeout=60, **kwargs
            )
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise CliError(f"{response.status_code}: {detail}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def wait(self, job: Job, kind: JobKind, timeout: int) -> Job:
        """Poll a job until it is no longer queued or running, showing its progress (a bar on
        a terminal, plain lines otherwise); Ctrl-C stops the waiting, not the job."""
        waiter = Waiter(
            kind,
            lambda ident: self.json("GET", kind.path.format(ident)),
            bar=False if options().json else None,  # --json: plain lines, no bar
        )
        try:
            return waiter.wait(job, timeout)
        except TimeoutError as exc:
            raise CliError(str(exc)) from exc
        except StoppedWaiting as stopped:
            print(stopped, file=sys.stderr)
            raise SystemExit(130) from None


WAIT = [
    click.option("--wait", is_flag=True, help="wait until it finishes"),
    click.option("--timeout", type=POSITIVE, default=3600, help="seconds to --wait"),
]


def wait_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(WAIT):
        command = option(command)
    return command
