"""Commands that talk to AWS directly, and those that change an organization: the latter are
written to its audit log before they run (no audit record, no change)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from smctl.resources import configure
from success_metrics import audit

F = TypeVar("F", bound=Callable[..., Any])


def uses_aws(command: F) -> F:
    """Find the resources (environment, .local/stack.json, stack outputs) before running."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        configure()
        return command(*args, **kwargs)

    return run  # type: ignore[return-value]


def audited(name: str, resource: str | None = None) -> Callable[[F], F]:
    """An AWS command that changes the organization named by its `org_id` argument; `resource`
    names the argument (a key or destination id) the audit record points at."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            configure()
            with audit.cli_operation(
                kwargs["org_id"], name, kwargs.get(resource) if resource else None
            ):
                return command(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
