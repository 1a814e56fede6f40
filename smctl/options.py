"""What every command shares: the global options (accepted before or after the command's name),
the output rule (`--json` or one human line per record) and the one-line failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """A failure explained in one line; smctl prints it and exits 1."""


@dataclass
class Options:
    """The global options, wherever on the command line they were given."""

    json: bool = False
    endpoint_url: str | None = None
    region: str | None = None
    stack_name: str = "success-metrics"
    stack_file: str | None = None
    no_local: bool = False


def options() -> Options:
    """The running command's global options."""
    return click.get_current_context().find_root().ensure_object(Options)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # Given at the group or at the command: the first explicit value wins, a default never
    # overwrites one.
    if value is None or value is False or param.name is None:
        return
    setattr(ctx.find_root().ensure_object(Options), param.name, value)


_GLOBAL: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--json",), {"is_flag": True, "default": False, "help": "machine-readable output"}),
    (("--endpoint-url",), {"help": "AWS endpoint (default: .local/stack.json or AWS)"}),
    (("--region",), {"help": "AWS region"}),
    (("--stack-name",), {"help": "CloudFormation stack (default success-metrics)"}),
    (("--stack-file",), {"help": "local stack description (default .local/stack.json)"}),
    (("--no-local",), {"is_flag": True, "default": False, "help": "ignore .local/stack.json"}),
]


def _global_params() -> list[click.Parameter]:
    return [
        click.Option(list(declarations), expose_value=False, callback=_remember, **settings)
        for declarations, settings in _GLOBAL
    ]


def global_options(command: F) -> F:
    """Accept the global options on this command (argparse's `parents=` in click)."""
    for declarations, settings in reversed(_GLOBAL):
        command = click.option(*declarations, expose_value=False, callback=_remember, **settings)(
            command
        )
    return command


def group(name: str, help_text: str) -> click.Group:
    """A command group that takes the global options too."""
    return click.Group(name, help=help_text, params=_global_params())


def command(
    parent: click.Group, name: str | None = None, **settings: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """A command of `parent`, with the global options."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        made: click.Command = parent.command(name, **settings)(global_options(function))
        return made

    return decorate


def arguments(*names: str) -> Callable[[F], F]:
    """Positional arguments, in order (most commands take ORG_ID and one more id)."""

    def decorate(function: F) -> F:
        for name in reversed(names):
            function = click.argument(name)(function)
        return function

    return decorate


def output(data: Any, text: str) -> None:
    """Print `data` as JSON with `--json`, else the human text."""
    click.echo(json.dumps(data, indent=2, default=str) if options().json else text)


class _Positive(click.ParamType):
    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if number < 1:
            self.fail(f"{number} is not a positive whole number", param, ctx)
        return number


POSITIVE = _Positive()
ON_OFF = click.Choice(["on", "off"])


def on_off(value: str | None) -> bool | None:
    return None if value is None else value == "on"
