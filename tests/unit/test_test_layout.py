"""The test suite's own layout: shared fixtures in a conftest.py, helpers in tests/support/, and no
module importing a test module. A test module is for pytest to collect, not a library: a fixture
imported from one shadows the name (the F811 suppressions this replaced), a test function
imported from one runs twice, and helpers hidden in one are found by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def is_test_module(name: str) -> bool:
    """`tests.<tier>.test_x` (at any depth under tests/)."""
    parts = name.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") for part in parts[1:])


def imported_test_modules(source: str, module_of_source: str) -> list[str]:
    """Every test module the source imports, anywhere in it (function-level imports too), as
    "line: module"."""
    tree = ast.parse(source)
    package = module_of_source.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if is_test_module(module):
                found.append((node.lineno, module))
            else:  # `from tests.integration import test_admin` imports a module by its name
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [f"{line}: {name}" for line, name in sorted(found) if is_test_module(name)]


def violations(paths: list[Path]) -> dict[str, list[str]]:
    return {
        str(path.relative_to(ROOT)): bad
        for path in paths
        if (bad := imported_test_modules(path.read_text(), module_name(path)))
    }


def test_the_check_finds_every_form_of_importing_a_test_module() -> None:
    assert is_test_module("tests.integration.test_admin")
    assert is_test_module("tests.e2e.test_local_stack.aws")
    assert not is_test_module("tests.support.api")
    assert not is_test_module("tests.integration.conftest")
    assert not is_test_module("success_metrics.test_mode")
    tier = "integration"  # spelled apart so a grep for such imports finds none in this file
    source = (
        "import tests.unit.test_batch\n"
        f"from tests.{tier}.test_admin import authorize\n"
        "from tests.e2e import test_local_stack\n"
        "from tests.support.api import admin\n"
        "from .test_sync import run_sync\n"
        "def f():\n"
        "    from tests.integration.conftest import scan_all\n"
        f"    from tests.{tier}.test_consent import get_consent\n"
    )

    found = imported_test_modules(source, "tests.integration.test_sample")

    assert found == [
        "1: tests.unit.test_batch",
        "2: tests.integration.test_admin",
        "3: tests.e2e.test_local_stack",
        "5: tests.integration.test_sync",
        "8: tests.integration.test_consent",
    ]


def test_no_test_module_imports_another_test_module() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 30  # the walk found the suite

    assert violations(modules) == {}, (
        "move what is shared to tests/support/ (helpers) or a conftest.py (fixtures)"
    )


def test_support_and_conftest_import_no_test_module() -> None:
    helpers = sorted(TESTS.glob("support/**/*.py")) + sorted(TESTS.rglob("conftest.py"))
    assert TESTS / "support" / "__init__.py" in helpers

    assert violations(helpers) == {}
