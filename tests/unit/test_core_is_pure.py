"""acd/ imports no I/O library and reads no clock."""

from __future__ import annotations

import ast
from pathlib import Path

ALLOWED = {"__future__", "dataclasses", "enum", "collections", "typing", "bisect", "heapq", "datetime", "acd"}


def test_acd_imports_only_pure_modules() -> None:
    for path in sorted(Path(__file__).resolve().parents[2].joinpath("acd").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
        assert "time.time" not in path.read_text(encoding="utf-8")
