"""The operator's post-deploy smoke test (scripts/smoke.sh), run against the local stack: every
step it reports must pass here, under the same per-function roles as on AWS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, RunningStack


def test_the_smoke_test_passes_on_the_local_stack(stack: RunningStack, tmp_path: Path) -> None:
    # Given smctl pointed at the local stack (the script always passes --no-local for AWS)
    smctl = tmp_path / "smctl"
    smctl.write_text(
        "#!/usr/bin/env bash\n"
        "args=()\n"
        'for a in "$@"; do [ "$a" = "--no-local" ] || args+=("$a"); done\n'
        f'exec {Path(sys.executable).with_name("smctl")} "${{args[@]}}" '
        f"--stack-file {stack.state_dir / 'stack.json'}\n"
    )
    smctl.chmod(0o755)
    # When the operator runs it, with a customer webhook on the sink
    result = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts/smoke.sh"),
            "--api-url",
            stack.api_url,
            "--webhook-url",
            f"{stack.sink_url}/webhooks/smoke",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "SMCTL": str(smctl)},
        check=False,
    )
    # Then every step passes, none skipped
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.split("result  step", 1)[1]
    for step in ("org", "destination", "ingest", "sync", "metrics", "export", "erasure", "cleanup"):
        assert f"PASS  {step}" in summary, summary
    assert "FAIL" not in summary
    assert "SKIP" not in summary
