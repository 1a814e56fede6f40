"""Handlers import only what they use: openpyxl, httpx and the OpenAPI machinery stay out of
every handler's cold start but those of the functions that need them. (The import times, as
ratios to `import boto3`, are measured by `benchmarks/coldstart.py`, not asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.template import Function, functions, load

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "openpyxl",
    "httpx",
    "success_metrics.openapi",
    "aws_lambda_powertools.event_handler.openapi.models",
)
# Who needs what at import time: the digest, the delivery worker and the alarm notifier send
# over HTTP; the
# OpenAPI function is the OpenAPI machinery.
ALLOWED = {
    "DailyDigestFunction": {"httpx"},
    "PlatformSyncFunction": {"httpx"},
    "AlarmNotifierFunction": {"httpx"},
    "OpenApiFunction": {
        "success_metrics.openapi",
        "aws_lambda_powertools.event_handler.openapi.models",
    },
}


@pytest.mark.parametrize(
    "function", functions(load()), ids=lambda f: f.logical_id.removesuffix("Function")
)
def test_a_handler_imports_no_heavy_module_it_does_not_use(function: Function) -> None:
    code_uri = Path(function.code_uri)
    module = function.handler.rsplit(".", 1)[0]
    probe = (
        f"import sys, json, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/shared"), str(ROOT)]),
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT / code_uri,
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    logical_id = function.logical_id
    assert loaded <= ALLOWED.get(logical_id, set()), f"{logical_id} imports {sorted(loaded)}"
