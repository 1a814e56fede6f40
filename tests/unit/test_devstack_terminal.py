"""The `make run` terminal: a function's logs and EMF go to its log file, the terminal gets one
line per notable happening and a summary of activity; --verbose streams everything."""

from __future__ import annotations

import io
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from devstack.terminal import Activity, QuietHTTPServer, Router, notable


def record(message: str, level: str = "INFO", **extra: object) -> str:
    doc = {
        "level": level,
        "message": message,
        "function_name": "PlatformSyncFunction",
        "function_request_id": "req-1",
        **extra,
    }
    return json.dumps(doc)


EMF = json.dumps(
    {
        "_aws": {
            "CloudWatchMetrics": [
                {"Metrics": [{"Name": "EventsAccepted"}, {"Name": "DeliveryRequests"}]}
            ]
        },
        "EventsAccepted": [20.0, 5.0],
        "DeliveryRequests": 3,
    }
)


def router(
    tmp_path: Path, function: str | None, verbose: bool = False
) -> tuple[Router, io.StringIO]:
    screen = io.StringIO()
    current = [function]
    routed = Router(
        screen, tmp_path, verbose=verbose, activity=Activity(), current=lambda: current[0]
    )
    return routed, screen


def test_a_functions_lines_go_to_its_file_and_only_notable_ones_to_the_terminal(
    tmp_path: Path,
) -> None:
    routed, screen = router(tmp_path, "PlatformSyncFunction")
    lines = [
        record("routed"),
        EMF,
        record("delivery failed", "ERROR", exception_name="ConnectError"),
        record("dead-lettered", "WARNING", queue="delivery", org_id="org_1", message_id="m-9"),
        record("circuit breaker changed", "WARNING", dest_id="mp", state="open"),
        "[devstack] AccessDenied: PlatformSyncFunction called PutItem",
    ]
    for line in lines:
        routed.write(line[:10])  # written in pieces, as streams are
        routed.write(line[10:] + "\n")

    kept = (tmp_path / "PlatformSyncFunction.log").read_text().splitlines()
    assert kept == lines  # the whole structured log, EMF included
    shown = screen.getvalue().splitlines()
    assert shown == [
        "[devstack] ✗ PlatformSyncFunction (request req-1): delivery failed: ConnectError",
        "[devstack] ☠ dead-lettered: a message of the delivery queue (organization org_1, "
        "message m-9); see `smctl dlq list`",
        "[devstack] ⚡ circuit breaker open for destination mp",
        "[devstack] AccessDenied: PlatformSyncFunction called PutItem",
    ]
    assert "_aws" not in screen.getvalue()
    assert "routed" not in screen.getvalue()
    routed.activity.count("PlatformSyncFunction", error=False)
    routed.activity.count("WebhookReceiveFunction", error=True)
    assert routed.activity.take() == (
        "2 invocations (PlatformSyncFunction 1, WebhookReceiveFunction 1), 1 failed; "
        "25 events accepted; 3 delivery requests"
    )
    assert routed.activity.take() is None  # nothing since: no summary line


def test_the_stacks_own_lines_reach_the_terminal(tmp_path: Path) -> None:
    routed, screen = router(tmp_path, None)
    routed.write("[devstack] ready in 9.0 s\n")
    assert screen.getvalue() == "[devstack] ready in 9.0 s\n"
    assert not list(tmp_path.iterdir())


def test_verbose_streams_every_line_too(tmp_path: Path) -> None:
    routed, screen = router(tmp_path, "WebhookReceiveFunction", verbose=True)
    routed.write(record("routed") + "\n" + EMF + "\n")
    assert screen.getvalue().splitlines() == [record("routed"), EMF]
    assert (tmp_path / "WebhookReceiveFunction.log").read_text().splitlines() == [
        record("routed"),
        EMF,
    ]


def test_finished_work_is_announced_and_request_ids_are_the_functions_own() -> None:
    assert notable("ExportWorkerFunction", json.loads(record(
        "export succeeded", export_id="exp_1", rows=1200, bytes=34567
    ))) == "✓ export exp_1 finished: 1,200 rows, 34,567 bytes"  # fmt: skip
    assert notable("GdprWorkerFunction", json.loads(record(
        "erasure finished", erasure_id="era_1", status="succeeded"
    ))) == "✓ erasure era_1 finished: succeeded"  # fmt: skip
    # Keys another function's invocation left on the shared logger name no request of ours.
    assert notable("SyncRouterFunction", json.loads(record("boom", "ERROR"))) == (
        "✗ SyncRouterFunction: boom"
    )


def test_a_client_going_away_prints_nothing_and_other_failures_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = QuietHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler, bind_and_activate=False)
    server.name = "HTTP API"
    for failure in (ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError()):
        try:
            raise failure
        except OSError:
            server.handle_error(None, ("127.0.0.1", 5))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("bad header")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 5))
    assert capsys.readouterr().err == (
        "[devstack] HTTP API: a request from 127.0.0.1 failed: ValueError: bad header\n"
    )
    server.server_close()
