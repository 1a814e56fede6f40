"""smctl's command tree (click): every command answers --help, takes --json and the other global
options before or after its name, and refuses bad arguments with exit code 2; smctl is not in
the Lambda layer."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from smctl import app
from smctl.options import Options

ROOT = Path(__file__).resolve().parents[2]


def leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaves(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = leaves(app.cli)


def test_the_tree_has_every_command_of_the_operations_guide() -> None:
    assert len(COMMANDS) == 31
    for expected in (
        ("org", "create"),
        ("org", "set-limits"),
        ("key", "revoke"),
        ("secret", "rotate"),
        ("send",),
        ("schedule", "run"),
        ("dest", "validate"),
        ("dlq", "replay"),
        ("export", "download"),
        ("gdpr", "erase"),
        ("audit", "list"),
        ("console", "link"),
    ):
        assert expected in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_answers_help_and_takes_the_global_options(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert app.main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: smctl {' '.join(path)} ")
    for option in ("--json", "--no-local", "--stack-file", "--endpoint-url", "--region"):
        assert option in out


def test_global_options_count_before_and_after_the_command() -> None:
    for argv in (
        ["--json", "--stack-name", "prod", "org", "show", "--help"],
        ["org", "--json", "show", "--stack-name", "prod", "--help"],
        ["org", "show", "--help", "--json", "--stack-name", "prod"],
    ):
        with app.cli.make_context("smctl", list(argv), resilient_parsing=True) as root:
            opts = root.ensure_object(Options)
            # The group's options are parsed here; the command's when it is resolved.
            ctx = root
            while isinstance(ctx.command, click.Group) and ctx.protected_args:
                name, command, rest = ctx.command.resolve_command(
                    ctx, [*ctx.protected_args, *ctx.args]
                )
                assert command is not None
                ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=True)
            assert (opts.json, opts.stack_name) == (True, "prod"), argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["org", "set-limits", "org_x", "--events-per-hour", "0"], "positive whole number"),
        (["org", "set-limits", "org_x", "--events-per-hour", "many"], "not a whole number"),
        (["org", "set-privacy", "org_x", "--anonymise-all", "maybe"], "'on', 'off'"),
        (["key", "create", "org_x", "--scope", "everything"], "metrics:read"),
        (["export", "create", "--from", "2026-01-01"], "--to"),
        (["gdpr", "erase"], "anonymous-id"),
        (["dlq", "list", "--queue", "nowhere"], "delivery"),
        (["nosuch"], "No such command"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        app.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_smctl_is_not_shipped_in_the_lambda_layer() -> None:
    layer = ROOT / "layers" / "shared" / "success_metrics"
    assert not (layer / "cli.py").exists()
    # make lint (the import contract) refuses a layer module importing smctl or click.
    forbidden = (ROOT / ".importlinter").read_text().split("forbidden_modules =")[1].split()
    assert {"smctl", "click"} <= set(forbidden)
