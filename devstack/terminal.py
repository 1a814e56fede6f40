"""What the `make run` terminal shows: the stack's own lines and one line per notable happening;
every function's structured logs and EMF metrics go to `<state-dir>/logs/<function>.log`.

All functions share the stack's process, so what a function writes to standard output or error
(powertools' JSON log lines, its EMF metric documents, a stray print) is told apart by the
function the writing thread works for (`observability.current_function`). Each complete line is
appended to that function's log file; a line worth a person's attention (an error with its
request id, a dead letter, a circuit breaker opening or closing, an export or an erasure
finished) is summarised on the terminal; lines the stack itself prints (`[devstack] …`) always
reach the terminal. Every 30 s with activity, one line sums it up. `--verbose` streams
everything to the terminal too, as before."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

SUMMARY_SECONDS = 30.0
# The EMF metrics the summary adds up, and how it words them.
SUMMED = {
    "EventsAccepted": ("event accepted", "events accepted"),
    "DeliveryRequests": ("delivery request", "delivery requests"),
    "ExportsSucceeded": ("export finished", "exports finished"),
}
STACK_PREFIX = "[devstack]"


def _short(text: Any, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def notable(function: str, record: dict[str, Any]) -> str | None:
    """The one terminal line for a function's structured log record, or None."""
    message = str(record.get("message", ""))
    level = str(record.get("level", "")).upper()
    # All functions share one process and powertools' logger keys: a record names its request
    # only when the keys are this function's.
    request = record.get("function_request_id") if record.get("function_name") == function else None
    where = f"{function}" + (f" (request {request})" if request else "")
    if level in ("ERROR", "CRITICAL"):
        cause = record.get("exception_name") or ""
        detail = f": {cause}" if cause else ""
        return f"✗ {where}: {_short(message)}{detail}"
    if message == "dead-lettered":
        return (
            f"☠ dead-lettered: a message of the {record.get('queue')} queue "
            f"(organization {record.get('org_id')}, message {record.get('message_id')}); "
            "see `smctl dlq list`"
        )
    if message == "circuit breaker changed":
        return f"⚡ circuit breaker {record.get('state')} for destination {record.get('dest_id')}"
    if message == "export succeeded":
        ident = record.get("export_id")
        name = f"export {ident}" if ident else "an export"
        rows, size = record.get("rows", 0), record.get("bytes", 0)
        return f"✓ {name} finished: {rows:,} rows, {size:,} bytes"
    if message == "export failed on its last attempt":
        return f"✗ {where}: an export failed on its last attempt"
    if message == "erasure finished":
        return f"✓ erasure {record.get('erasure_id')} finished: {record.get('status')}"
    return None


class Activity:
    """What happened since the last summary."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.invocations: Counter[str] = Counter()
        self.errors = 0
        self.metrics: Counter[str] = Counter()

    def count(self, function: str, error: bool) -> None:
        with self.lock:
            self.invocations[function] += 1
            self.errors += error

    def metric(self, record: dict[str, Any]) -> None:
        names = [
            m["Name"]
            for d in record["_aws"].get("CloudWatchMetrics", [])
            for m in d.get("Metrics", [])
        ]
        with self.lock:
            for name in tuple(SUMMED):
                value = record.get(name)
                if name not in names or value is None:
                    continue
                values = value if isinstance(value, list) else [value]
                self.metrics[name] += int(sum(v for v in values if isinstance(v, int | float)))

    def take(self) -> str | None:
        with self.lock:
            if not self.invocations:
                return None
            total = sum(self.invocations.values())
            busiest = ", ".join(f"{n} {c}" for n, c in self.invocations.most_common(4))
            others = len(self.invocations) - 4
            line = f"{total} invocations ({busiest}{f', +{others} more' if others > 0 else ''})"
            line += f", {self.errors} failed"
            for name, (one, many) in SUMMED.items():
                if self.metrics[name]:
                    count = self.metrics[name]
                    line += f"; {count:,} {one if count == 1 else many}"
            self.invocations.clear()
            self.metrics.clear()
            self.errors = 0
            return line


class Router:
    """Stands in for sys.stdout and sys.stderr: a function's lines to its log file, the rest
    (and the notable ones, summarised) to the terminal."""

    def __init__(
        self,
        terminal: TextIO,
        directory: Path,
        *,
        verbose: bool,
        activity: Activity,
        current: Callable[[], str | None],
    ) -> None:
        self.terminal = terminal
        self.directory = directory
        self.verbose = verbose
        self.activity = activity
        self.current = current
        self.lock = threading.Lock()
        self.files: dict[str, TextIO] = {}
        self.partial = threading.local()

    # the file interface print(), logging and warnings use
    @property
    def encoding(self) -> str:
        return getattr(self.terminal, "encoding", "utf-8")

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()

    def flush(self) -> None:
        with self.lock:
            self.terminal.flush()
            for handle in self.files.values():
                handle.flush()

    def write(self, text: str) -> int:
        function = self.current()
        if function is None:
            with self.lock:
                self.terminal.write(text)
                self.terminal.flush()
            return len(text)
        pending = getattr(self.partial, "text", "") + text
        *lines, rest = pending.split("\n")
        self.partial.text = rest
        for line in lines:
            self._line(function, line)
        return len(text)

    def _line(self, function: str, line: str) -> None:
        shown: str | None = None
        record: dict[str, Any] | None = None
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                record = parsed
        if record is not None and "_aws" in record:
            self.activity.metric(record)
        elif record is not None:
            shown = notable(function, record)
        elif line.startswith(STACK_PREFIX):
            shown = line
        with self.lock:
            handle = self.files.get(function)
            if handle is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = self.files[function] = (self.directory / f"{function}.log").open(
                    "a", encoding="utf-8", buffering=1
                )
            handle.write(line + "\n")
            if self.verbose:
                self.terminal.write(line + "\n")
            elif shown is not None:
                prefix = "" if shown.startswith(STACK_PREFIX) else f"{STACK_PREFIX} "
                self.terminal.write(f"{prefix}{shown}\n")
            self.terminal.flush()

    def close(self) -> None:
        with self.lock:
            for handle in self.files.values():
                handle.close()
            self.files.clear()


class Terminal:
    """Installs the router on sys.stdout and sys.stderr and prints the activity summaries."""

    def __init__(self, directory: Path, *, verbose: bool) -> None:
        from success_metrics import observability

        self.activity = Activity()
        self.original = (sys.stdout, sys.stderr)
        self.stdout, self.stderr = (
            Router(
                stream,
                directory,
                verbose=verbose,
                activity=self.activity,
                current=observability.current_function,
            )
            for stream in self.original
        )
        self.stderr.files = self.stdout.files  # one file per function, both streams in it
        self.stderr.lock = self.stdout.lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._summaries, name="activity", daemon=True)

    def install(self) -> None:
        sys.stdout, sys.stderr = self.stdout, self.stderr  # type: ignore[assignment]
        # Loggers made before now hold the real streams: point their handlers at the router.
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler
                ):
                    if handler.stream is self.original[0]:
                        handler.setStream(self.stdout)  # type: ignore[arg-type]
                    elif handler.stream is self.original[1]:
                        handler.setStream(self.stderr)  # type: ignore[arg-type]
        self._thread.start()

    def _summaries(self) -> None:
        while not self._stop.wait(SUMMARY_SECONDS):
            line = self.activity.take()
            if line is not None:
                stamp = time.strftime("%H:%M:%S")
                self.stdout.write(f"{STACK_PREFIX} {stamp} last {SUMMARY_SECONDS:.0f} s: {line}\n")

    def uninstall(self) -> None:
        self._stop.set()
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.StreamHandler):
                    if handler.stream is self.stdout:
                        handler.setStream(self.original[0])
                    elif handler.stream is self.stderr:
                        handler.setStream(self.original[1])
        sys.stdout, sys.stderr = self.original
        self.stdout.close()


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client goes away (a
    keep-alive connection reset or closed mid-request is normal) and prints one line for any
    other failure of a request's handling."""

    daemon_threads = True
    name = "HTTP server"

    def handle_error(self, request: Any, client_address: Any) -> None:
        failure = sys.exc_info()[1]
        if isinstance(failure, ConnectionError | TimeoutError):
            return
        print(
            f"{STACK_PREFIX} {self.name}: a request from {client_address[0]} failed: "
            f"{type(failure).__name__}: {failure}",
            file=sys.stderr,
        )
