"""smctl's --wait: one progress bar on a terminal (rows, bytes, percent, rate, time left), plain
lines that never repeat elsewhere, and Ctrl-C that stops the waiting but not the job."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console

from smctl import app
from smctl.commands import exports, gdpr
from smctl.progress import StoppedWaiting, Waiter


def export_job(status: str, rows: int, percent: float | None, size: int = 0) -> dict[str, Any]:
    return {
        "id": "exp_1",
        "status": status,
        "dataset": "events",
        "format": "csv",
        "range": {"from": "2026-05-01", "to": "2026-10-31"},
        "progress": {"rows": rows, "bytes": size, "estimated_rows": 40_000, "percent": percent},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fetcher(jobs: list[dict[str, Any]]) -> Any:
    polls: Iterator[dict[str, Any]] = iter(jobs)
    return lambda ident: next(polls)


def test_plain_lines_are_printed_only_when_the_status_changes() -> None:
    clock = Clock()
    out = io.StringIO()
    polls = [export_job("running", 0, 0.0)] * 5 + [
        export_job("running", 20_000, 50.0),
        export_job("succeeded", 40_000, 100.0),
    ]
    waiter = Waiter(
        exports.KIND, fetcher(polls), stream=out, bar=False, sleep=clock.sleep, clock=clock
    )

    done = waiter.wait(export_job("queued", 0, None), timeout=60)

    assert done["status"] == "succeeded"
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[1] for line in lines] == [
        "queued",
        "running 0%",
        "running 50%",
        "succeeded 100%",
    ]
    assert "20,000 rows" in lines[2]


def test_the_bar_shows_rows_bytes_percent_rate_and_time_left() -> None:
    clock = Clock()
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    polls = [
        export_job("running", 10_000, 25.0, 1_500_000),
        export_job("running", 20_000, 50.0, 3_000_000),
        export_job("succeeded", 40_000, 100.0, 6_000_000),
    ]
    drawn: list[str] = []

    def fetch(ident: str) -> dict[str, Any]:
        drawn.append(screen.getvalue())  # what the terminal shows before each poll
        return polls.pop(0)

    waiter = Waiter(exports.KIND, fetch, console=console, sleep=clock.sleep, clock=clock)
    assert waiter.bar is True  # a terminal: the bar, not lines
    waiter.wait(export_job("running", 0, 0.0), timeout=60)

    # After 4 s, half done: 20,000 rows, 3.0 MB, 5,000 rows/s and 4 s left.
    midway = drawn[2].rsplit("\r", 1)[-1]
    assert "exp_1 running events csv" in midway
    for shown in ("50%", "20,000 rows", "3.0 MB", "5,000 rows/s", "0:00:04 left"):
        assert shown in midway, (shown, midway)
    final = screen.getvalue().rsplit("\r", 1)[-1]
    for shown in ("exp_1 succeeded events csv", "100%", "40,000 rows", "6.0 MB"):
        assert shown in final, (shown, final)
    assert screen.getvalue().count("\n") == 1  # redrawn in place: one line, ended once


def test_an_erasure_counts_systems_done_and_items_erased() -> None:
    job = {
        "erasure_id": "era_1",
        "status": "running",
        "systems": {
            "events": {"status": "done", "count": 12},
            "consent": {"status": "running", "count": 3},
            "mixpanel": {"status": "pending", "count": 0},
            "ga4": {"status": "not_configured", "count": 0},
        },
    }
    reading = gdpr.KIND.read(job)
    assert (reading.done, reading.total, reading.rows, reading.rows_unit) == (2, 4, 15, "items")
    assert reading.label == "era_1 running: consent"


def test_ctrl_c_stops_waiting_and_leaves_the_job_running() -> None:
    def interrupted(ident: str) -> dict[str, Any]:
        raise KeyboardInterrupt

    waiter = Waiter(
        exports.KIND, interrupted, stream=io.StringIO(), bar=False, sleep=lambda s: None
    )
    with pytest.raises(StoppedWaiting) as stopped:
        waiter.wait(export_job("running", 5, 1.0), timeout=60)
    assert "exp_1 was not cancelled and carries on" in str(stopped.value)
    assert "smctl export show exp_1" in str(stopped.value)


def test_ctrl_c_in_smctl_export_create_wait_sends_no_cancel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []

    def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
        calls.append(method)
        if method == "POST":
            return httpx.Response(202, json=export_job("queued", 0, None))
        if len(calls) > 2:
            raise KeyboardInterrupt
        return httpx.Response(200, json=export_job("running", 10, 5.0))

    monkeypatch.setattr(httpx, "request", request)
    monkeypatch.setattr("smctl.progress.POLL_SECONDS", 0.0)
    args = ["export", "create", "--from", "2026-05-01", "--to", "2026-05-02", "--wait"]
    target = ["--api-url", "http://api.test", "--api-key", "k", "--no-local"]
    with pytest.raises(SystemExit) as ended:
        app.main([*args, *target])
    assert ended.value.code == 130
    assert calls == ["POST", "GET", "GET"]  # no DELETE: the export is not cancelled
    err = capsys.readouterr().err
    assert "stopped waiting; the export exp_1 was not cancelled" in err
