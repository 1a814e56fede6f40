"""Cold-start budget of every handler: a fresh interpreter importing the handler module (as
Lambda does: the function's folder as the working directory, the layer on the path), divided by
a fresh `import boto3` measured in the same run, interleaved so machine noise hits both alike.

Also lists which heavy optional modules each handler's import pulls in (openpyxl, httpx, the
OpenAPI machinery): only the handlers that use them may (tests/unit/test_cold_start.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_env import PATHS, ROOT

from devstack.template import functions, load

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
HEAVY = (
    "openpyxl",
    "httpx",
    "tenacity",
    "success_metrics.openapi",
    "aws_lambda_powertools.event_handler.openapi.models",
)


def timed(statement: str, cwd: Path) -> tuple[float, list[str]]:
    code = (
        "import sys, time, json; t = time.perf_counter(); "
        f"{statement}; d = time.perf_counter() - t; "
        f"print(json.dumps([d, [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PATHS)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=cwd
    )
    seconds, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), list(heavy)


def main() -> None:
    handlers = sorted(functions(load()), key=lambda f: f.logical_id)
    boto: list[float] = []
    times: dict[str, list[float]] = {f.logical_id: [] for f in handlers}
    heavy: dict[str, list[str]] = {}
    for _ in range(RUNS):
        for function in handlers:
            boto.append(timed("import boto3", ROOT)[0])
            module = function.handler.rsplit(".", 1)[0]
            seconds, loaded = timed(f"import {module}", ROOT / function.code_uri)
            times[function.logical_id].append(seconds)
            heavy[function.logical_id] = loaded
    base = statistics.median(boto)
    print(f"cold import, median of {RUNS} fresh interpreters; import boto3 = {base * 1000:.0f} ms")
    print(f"{'function':<28} {'import':>8} {'÷ boto3':>8}  heavy modules imported")
    for function in handlers:
        median = statistics.median(times[function.logical_id])
        loaded = ", ".join(heavy[function.logical_id]) or "-"
        print(f"{function.logical_id:<28} {median * 1000:>6.0f} ms {median / base:>8.2f}  {loaded}")
    worst = max(statistics.median(v) for v in times.values()) / base
    print(f"worst handler ÷ import boto3 = {worst:.2f}")


if __name__ == "__main__":
    main()
