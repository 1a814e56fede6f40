"""End-to-end tier: the local stack started once per session on free ports, driven over HTTP
and through smctl only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import demo
from tests.reference_metrics import from_api, recompute

ROOT = Path(__file__).resolve().parents[2]
SMCTL = Path(sys.executable).with_name("smctl")
START_TIMEOUT = 180


@dataclass
class RunningStack:
    state: dict[str, Any]
    state_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def api_url(self) -> str:
        return str(self.state["api_url"])

    @property
    def sink_url(self) -> str:
        return str(self.state["sink_url"])

    @property
    def org(self) -> dict[str, str]:
        return dict(self.state["organizations"][0])

    def smctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(SMCTL), *args, "--stack-file", str(self.state_dir / "stack.json")],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"smctl {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def smctl_json(self, *args: str) -> Any:
        return json.loads(self.smctl(*args, "--json").stdout)


DEMO_SEASON = {"from": "2026-05-01", "to": "2026-10-31"}


def demo_season_metrics(stack: RunningStack, http: httpx.Client, key: str) -> dict[str, Any]:
    """/v1/metrics for the demo season, by month, once the metrics consumer has counted every demo event.

    "Settled" is decided against a recomputation of the events the stack loads, not by the
    answer standing still for a second: the demo is still arriving while the first tests run.
    """
    size = int(os.environ.get("SM_E2E_DEMO_SIZE", "300"))
    months = (DEMO_SEASON["from"][:7], DEMO_SEASON["to"][:7])
    everything = recompute(demo.organization_events(size, seed=7))  # the book starts earlier
    expected = {m: v for m, v in everything.items() if months[0] <= m <= months[1]}
    deadline = time.monotonic() + 180
    got: Any = None
    while time.monotonic() < deadline:
        answer = http.get(
            f"{stack.api_url}/v1/metrics",
            params={**DEMO_SEASON, "granularity": "month"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text
        got = from_api(answer.json())
        if got == expected:
            return dict(answer.json())
        time.sleep(1)
    raise AssertionError(f"the demo season was not counted in 180 s: {got} != {expected}")


def start_stack(
    tmp: Path,
    *extra: str,
    demo: bool = True,
    ports: dict[str, int] | None = None,
    log_name: str = "stack.log",
) -> RunningStack:
    """A stack on free ports (or on `ports`: {"aws": …, "api": …, "sink": …})."""
    state_dir = tmp / "state"
    log = tmp / log_name
    env = {
        **os.environ,
        "SM_AWS_PORT": "0",
        "SM_API_PORT": "0",
        "SM_SINK_PORT": "0",
        "SM_DEMO_SIZE": os.environ.get("SM_E2E_DEMO_SIZE", "300"),
        "PYTHONUNBUFFERED": "1",
    }
    for name, port in (ports or {}).items():
        env[f"SM_{name.upper()}_PORT"] = str(port)
    args = [sys.executable, "-m", "devstack", "--state-dir", str(state_dir), *extra]
    if not demo:
        args.append("--no-demo")
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited early:\n{log.read_text()[-4000:]}")
        if "[devstack] ready" in log.read_text():
            state = json.loads((state_dir / "stack.json").read_text())
            return RunningStack(state, state_dir, process, log)
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(
        f"the local stack did not start in {START_TIMEOUT} s:\n{log.read_text()[-4000:]}"
    )


def stop_stack(stack: RunningStack) -> None:
    stack.process.send_signal(signal.SIGINT)
    try:
        stack.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        stack.process.wait()
    # Every function runs under its template role: a refusal is a missing permission, even
    # where the product turned it into a retry or a dead letter and the test still passed.
    denied = [line for line in stack.log.read_text().splitlines() if "AccessDenied:" in line]
    assert not denied, "AWS would refuse these calls:\n" + "\n".join(sorted(set(denied)))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    stop_stack(running)


@pytest.fixture(scope="session")
def probe_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(
        tmp_path_factory.mktemp("probe"),
        "--template",
        str(ROOT / "tests/e2e/probe/template.yaml"),
        "--visibility-timeout-cap",
        "1",
        demo=False,
    )
    yield running
    stop_stack(running)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client
