"""`make run`: start the local stack and keep it running until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

from devstack.runner import LocalStack, Ports
from devstack.template import TEMPLATE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run Success Metrics locally from template.yaml: AWS emulator, HTTP API, "
        "SQS pollers, schedules, destination sink and email outbox. Ports come from "
        "SM_AWS_PORT, SM_API_PORT and SM_SINK_PORT (0 = any free port).",
    )
    parser.add_argument("--no-demo", action="store_true", help="do not seed the demo organization")
    parser.add_argument(
        "--demo-size",
        type=int,
        default=int(os.environ.get("SM_DEMO_SIZE", "1000")),
        help="demo events to load through the signed API (default 1000)",
    )
    parser.add_argument(
        "--demo-recent",
        type=int,
        default=int(os.environ.get("SM_DEMO_RECENT", "100")),
        help="extra demo events from the last two days, which GA4 still accepts (default 100)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("SM_STATE_DIR", ".local")),
        help="where stack.json and the outbox go (default .local)",
    )
    parser.add_argument(
        "--persist",
        nargs="?",
        type=Path,
        const=Path("DEFAULT"),
        default=None,
        metavar="DIR",
        help="keep every table, queue message, bucket object and key across restarts, in DIR "
        "(default: <state-dir>/persist); SM_PERSIST=1 does the same",
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="SAM template to run")
    parser.add_argument(
        "--visibility-timeout-cap",
        type=int,
        default=None,
        help="shorten queue visibility timeouts to at most N seconds (tests)",
    )
    parser.add_argument(
        "--no-schedules",
        action="store_true",
        help="do not run schedules on their rate (they still run on demand)",
    )
    parser.add_argument(
        "--emulator-only",
        action="store_true",
        help="start only the AWS emulator with the template provisioned and IAM on: no API, "
        "pollers, schedules, sink or demo (benchmarks/load.py replays calls against it)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=os.environ.get("SM_VERBOSE", "") not in ("", "0"),
        help="stream every function's structured logs and EMF metrics to the terminal too "
        "(they always go to <state-dir>/logs/<function>.log); SM_VERBOSE=1 does the same",
    )
    args = parser.parse_args(argv)
    if args.persist is None and os.environ.get("SM_PERSIST", "") not in ("", "0"):
        args.persist = Path("DEFAULT")
    if args.persist == Path("DEFAULT"):
        args.persist = args.state_dir / "persist"
    return args


def banner(stack: LocalStack, demo: dict[str, str] | None, loaded: dict[str, int] | None) -> str:
    lines = [
        "",
        "Success Metrics local stack is running",
        f"  HTTP API      {stack.api_url}",
        f"  console       {stack.api_url}/console/   (sign in with the API key printed below)",
        f"  AWS emulator  {stack.aws_endpoint}   (moto; AWS_ENDPOINT_URL={stack.aws_endpoint})",
        f"  sink          {stack.sink_url}/_sink/requests",
        f"  outbox        {stack.outbox_dir.resolve()}/*.eml",
        f"  state         {(stack.state_dir / 'stack.json').resolve()}",
        f"  functions     {', '.join(stack.functions)}",
        f"  routes        {len(stack.api.routes)}, SQS pollers {len(stack.pollers)}, "
        f"schedules {len(stack.schedules)}",
        "  IAM           enforced: each function runs under its own template role "
        "(a refused call prints [devstack] AccessDenied)",
    ]
    if demo:
        lines += [
            "",
            f"Demo organization {demo['name']}",
            f"  org id          {demo['org_id']}",
            f"  webhook secret  {demo['webhook_secret']}",
            f"  admin API key   {demo['api_key']}",
        ]
        if loaded:
            lines.append(
                f"  demo events     {loaded['accepted']} accepted through the signed API "
                f"({loaded['requests']} requests)"
            )
        lines += [
            "",
            "Try it (in another terminal):",
            "  .venv/bin/smctl send events/samples/batch.json --fresh-ids   # sign and post a file",
            f"  curl -s -H 'Authorization: Bearer {demo['api_key']}' \\\n"
            f"       {stack.api_url}/v1/organization",
            f"  curl -s {stack.sink_url}/_sink/requests",
            "  .venv/bin/smctl export create --format xlsx --from 2026-05-01 --to 2026-10-31 \\\n"
            "       --notify you@example.com --wait   # the season as Excel, emailed",
        ]
    lines += ["", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # Lambda runs without a terminal to warn on; an invocation with nothing to count is normal.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    args = parse_args(argv)
    from devstack import functions, terminal

    screen = terminal.Terminal(args.state_dir / "logs", verbose=args.verbose)
    screen.install()
    functions.listeners.append(
        lambda ended: screen.activity.count(ended.function, ended.error is not None)
    )
    stack = LocalStack(
        state_dir=args.state_dir,
        ports=Ports.from_env(),
        template_path=args.template.resolve(),
        visibility_cap=args.visibility_timeout_cap,
        run_schedules=not args.no_schedules,
        persist_dir=args.persist,
        emulator_only=args.emulator_only,
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        started = time.monotonic()
        stack.start()
        demo = loaded = None
        if args.emulator_only:
            print(
                f"[devstack] emulator only: {stack.aws_endpoint} (operator keys in "
                f"{(args.state_dir / 'stack.json').resolve()})",
                flush=True,
            )
        elif stack.restored:
            print(f"[devstack] persist: restored {stack.restored.describe()}", flush=True)
            demo = next(iter(stack.organizations), None)
        elif not args.no_demo:
            from devstack import seed

            demo = seed.create_demo_organization(stack.sink_url)
            stack.organizations.append(demo)
            stack.write_state()
            if args.demo_size > 0:
                loaded = seed.load_demo_events(
                    stack.api_url, demo, args.demo_size, recent=args.demo_recent
                )
        if not args.emulator_only:
            print(banner(stack, demo, loaded), flush=True)
        if stack.persistence:
            print(
                f"[devstack] persist: on, in {stack.persistence.directory.resolve()} "
                "(a snapshot at most every second; after a kill, the last second is lost)",
                flush=True,
            )
        print(
            f"[devstack] function logs and metrics: {(args.state_dir / 'logs').resolve()}/"
            "<function>.log" + (" (and here: --verbose)" if args.verbose else ""),
            flush=True,
        )
        print(f"[devstack] ready in {time.monotonic() - started:.1f} s", flush=True)
        while not stopping.wait(0.5):
            pass
    except OSError as exc:
        print(
            f"devstack: cannot start: {exc} (is another stack running? set SM_*_PORT)",
            file=sys.stderr,
        )
        stack.stop()
        screen.uninstall()
        return 1
    print("\n[devstack] stopping...", flush=True)
    stack.stop()
    print("[devstack] stopped", flush=True)
    screen.uninstall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
