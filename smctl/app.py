"""The root command group, and `main`, which turns every failure into one line and an exit
code: 0 done, 1 failed (the reason on stderr), 2 bad arguments (as click reports them), 130
interrupted."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from smctl.commands import (
    audit_log,
    console,
    destinations,
    dlq,
    exports,
    gdpr,
    keys,
    org,
    schedules,
    send,
)
from smctl.options import CliError, global_options
from success_metrics.errors import SuccessMetricsError


@click.group(
    help="Operate Success Metrics: organizations, API keys, secrets, destinations, exports, "
    "erasures. Resources come from environment variables, then .local/stack.json (the local "
    "stack), then the outputs of the CloudFormation stack --stack-name. Every command takes "
    "--json and exits non-zero with a one-line reason on failure.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@global_options
def cli() -> None:
    pass


for command in (
    org.org,
    keys.key,
    keys.secret,
    send.send,
    schedules.schedule,
    destinations.dest,
    dlq.dlq,
    exports.export,
    gdpr.gdpr,
    audit_log.audit,
    console.console,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = cli.main(
            args=list(argv) if argv is not None else None, prog_name="smctl", standalone_mode=False
        )
    except click.UsageError as exc:
        exc.show()
        raise SystemExit(2) from exc
    except click.ClickException as exc:
        exc.show()
        return 1
    except click.Abort:
        print("smctl: interrupted", file=sys.stderr)
        return 130
    except (CliError, SuccessMetricsError) as exc:
        print(f"smctl: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"smctl: AWS refused: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"smctl: cannot reach AWS: {exc}", file=sys.stderr)
        return 1
    # --help (and a group given no command) exit through click with their own code.
    return answer if isinstance(answer, int) else 0
