"""The runtime never imports dev/test tooling (testbed, tests, bench), and benchmarks never
import the test suite. The only exception is the CLI's `sandbox` and `demo` commands,
which import testbed lazily, inside the command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("acd", "cti", "config", "metrics", "recorder", "tickets")
TOOLING = {"testbed", "tests", "bench"}
LAZY_ALLOWED = {("cti/cli.py", "cmd_sandbox"), ("cti/cli.py", "cmd_demo")}


def imports(source: str) -> list[tuple[str, str | None]]:
    """(imported module, enclosing function or None at module level) for every import,
    including importlib.import_module("...") and __import__("...") with a literal name."""
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Import):
            found.extend((alias.name, function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.module or "", function))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if callee in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source), None)
    return found


def violations(package_dirs: list[str], forbidden: set[str], allowed: set[tuple[str, str]]) -> list[str]:
    out = []
    for package in package_dirs:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for module, function in imports(path.read_text(encoding="utf-8")):
                if module.split(".")[0] in forbidden and (rel, function or "") not in allowed:
                    where = f"{function}()" if function else "module level"
                    out.append(f"{rel} imports {module} ({where})")
    return out


def test_runtime_packages_import_no_tooling_except_the_cli_commands_that_run_it() -> None:
    assert violations(list(RUNTIME), TOOLING, LAZY_ALLOWED) == []


def test_benchmarks_do_not_import_the_test_suite() -> None:
    assert violations(["bench"], {"tests"}, set()) == []


def test_the_check_sees_top_level_lazy_and_importlib_imports() -> None:
    source = (
        "import testbed.sipp\n"
        "def cmd_run():\n    from bench import rig\n"
        "def f():\n    importlib.import_module('tests.integration.harness')\n"
    )
    assert imports(source) == [("testbed.sipp", None), ("bench", "cmd_run"),
                               ("tests.integration.harness", "f")]


def test_sandbox_and_demo_say_in_one_line_when_the_tooling_is_missing() -> None:
    # None in sys.modules makes `import testbed` fail as if the package were not installed.
    code = ("import sys; sys.modules['testbed'] = None\n"
            "from cti.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    for argv in (["sandbox", "status"], ["demo"]):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                              check=False, cwd=ROOT)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"hotline {argv[0]}: ") and "testbed" in lines[0]
