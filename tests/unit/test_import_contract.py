"""The import contract (`.importlinter`, run by `make lint`) holds, and fails on a back-import:
a copy of the package where a model imports the ingestion logic, or a store imports the local
stack, breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "success_metrics"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the package found under `package_parent`."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_with(tmp_path: Path, module: str, line: str) -> Path:
    parent = tmp_path / "src"
    shutil.copytree(PACKAGE, parent / "success_metrics")
    target = parent / "success_metrics" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return parent


def test_the_package_keeps_its_import_contract() -> None:
    answer = lint_imports(PACKAGE.parent)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "Contracts: 2 kept, 0 broken." in answer.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "models/events.py",
            "from success_metrics import ingest  # noqa",
            "success_metrics.models is not allowed to import success_metrics.ingest",
        ),
        (
            "stores/batch.py",
            "def _helper():\n    from success_metrics.gdpr import erasure  # noqa",
            "success_metrics.stores is not allowed to import success_metrics.gdpr.erasure",
        ),
        (
            "stores/events.py",
            "import devstack  # noqa",
            "success_metrics.stores.events -> devstack",
        ),
    ],
)
def test_a_back_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    answer = lint_imports(copy_with(tmp_path, module, line))
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert broken in " ".join(answer.stdout.split()), answer.stdout


def test_only_the_stores_call_dynamodb_and_s3() -> None:
    """Every table and bucket is reached through its store (issue 16): no other module of the
    package, no handler and no smctl command builds a DynamoDB or S3 call of its own."""
    import re

    call = re.compile(r"\baws\.(dynamodb|s3)\(\)")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for root in (PACKAGE, ROOT / "functions", ROOT / "smctl")
        for path in sorted(root.rglob("*.py"))
        if "stores" not in path.relative_to(root).parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if call.search(line)
    ]
    assert offenders == []
