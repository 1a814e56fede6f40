"""Waiting for a job (`--wait`): a progress bar on a terminal, plain lines elsewhere.

On a terminal (and without `--json`) one rich progress bar shows the job's rows, bytes, percent,
rate and time left, redrawn in place. When standard error is not a terminal, or with `--json`, a
plain line is printed each time the job's status line changes (never the same line twice).
Ctrl-C stops the waiting, not the job: the job runs on and the message says how to find it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

Job = dict[str, Any]
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Reading:
    """What a job's progress is at one poll, in the bar's terms."""

    done: float  # work done, in `unit`s
    total: float | None  # None: not known yet (the bar pulses)
    rows: int  # rows written (or items erased) so far
    rows_unit: str  # "rows", "items"
    bytes: int | None  # bytes written so far, where the job reports them
    label: str  # the job and what it is doing now


@dataclass(frozen=True)
class JobKind:
    """How to poll one kind of job and how to read its progress."""

    path: str  # the API path of one job, `{}` for its id
    ident: str  # the id's field
    noun: str  # "export", "erasure"
    show_command: str  # how to look at it again: "smctl export show {}"
    line: Callable[[Job], str]  # the one plain line
    read: Callable[[Job], Reading]


class StoppedWaiting(Exception):
    """Ctrl-C while waiting: the job is left running."""


def running(job: Job) -> bool:
    return job["status"] in ("queued", "running")


class _RowsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rows = task.fields.get("rows", 0)
        size = task.fields.get("bytes")
        text = f"{rows:,} {task.fields.get('unit', 'rows')}"
        if size is not None:
            text += f"  {decimal(size)}"
        return Text(text, style="progress.download")


class _RateColumn(ProgressColumn):
    """Rows per second since the wait began (rich's own speed counts the bar's unit)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        first = task.fields.get("first_rows", 0)
        rows = task.fields.get("rows", 0)
        if elapsed < 1 or rows <= first:
            return Text("", style="progress.data.speed")
        unit = task.fields.get("unit", "rows")
        return Text(f"{(rows - first) / elapsed:,.0f} {unit}/s", style="progress.data.speed")


def _bar(console: Console, clock: Callable[[], float]) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _RowsColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("elapsed,"),
        TimeRemainingColumn(),
        TextColumn("left"),
        console=console,
        transient=False,
        refresh_per_second=4,
        get_time=clock,
    )


class Waiter:
    """Polls `fetch` until the job ends, reporting progress on `stream`."""

    def __init__(
        self,
        kind: JobKind,
        fetch: Callable[[str], Job],
        *,
        stream: TextIO | None = None,
        console: Console | None = None,
        bar: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.fetch = fetch
        self.stream = stream if stream is not None else sys.stderr
        self.console = console or Console(file=self.stream, stderr=stream is None)
        self.bar = self.console.is_terminal if bar is None else bar
        self.sleep = sleep
        self.clock = clock

    def wait(self, job: Job, timeout: float) -> Job:
        """The job once it is no longer queued or running; StoppedWaiting on Ctrl-C,
        TimeoutError after `timeout` seconds."""
        try:
            if self.bar:
                return self._with_bar(job, timeout)
            # Not a terminal (a log, a pipe) or --json: plain lines, on standard error
            return self._with_lines(job, timeout)
        except KeyboardInterrupt:
            raise StoppedWaiting(self.stopped(job)) from None

    def stopped(self, job: Job) -> str:
        ident = job[self.kind.ident]
        return (
            f"stopped waiting; the {self.kind.noun} {ident} was not cancelled and carries on "
            f"(see it with: {self.kind.show_command.format(ident)})"
        )

    def _deadline(self, timeout: float) -> Callable[[Job], None]:
        deadline = self.clock() + timeout

        def check(current: Job) -> None:
            if self.clock() > deadline:
                raise TimeoutError(
                    f"{current[self.kind.ident]} is still {current['status']} after {timeout:g} s"
                )

        return check

    def _with_lines(self, job: Job, timeout: float) -> Job:
        check = self._deadline(timeout)
        last = None
        while True:
            text = self.kind.line(job)
            if text != last:
                print(text, file=self.stream, flush=True)
                last = text
            if not running(job):
                return job
            check(job)
            self.sleep(POLL_SECONDS)
            job = self.fetch(job[self.kind.ident])

    def _with_bar(self, job: Job, timeout: float) -> Job:
        check = self._deadline(timeout)
        first = self.kind.read(job)
        with _bar(self.console, self.clock) as progress:
            task = progress.add_task(
                first.label,
                total=first.total,
                first_rows=first.rows,
                rows=0,
                bytes=None,
                unit=first.rows_unit,
            )
            while True:
                reading = self.kind.read(job)
                progress.update(
                    task,
                    description=reading.label,
                    completed=reading.done,
                    total=reading.total,
                    rows=reading.rows,
                    bytes=reading.bytes,
                    refresh=True,
                )
                if not running(job):
                    if job["status"] == "succeeded":  # the bar ends full, whatever the estimate
                        whole = reading.total or max(reading.done, 1)
                        progress.update(task, total=whole, completed=whole)
                    return job
                check(job)
                self.sleep(POLL_SECONDS)
                job = self.fetch(job[self.kind.ident])
