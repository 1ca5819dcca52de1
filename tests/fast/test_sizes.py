"""The house's size rule: no class over 300 lines, no function over 80, anywhere in eventlab/
(generated sync twins included: their sources obey it, so they do too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "eventlab"
CLASS_LINES = 300
FUNCTION_LINES = 80


def oversized() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                limit = CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = FUNCTION_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                where = path.relative_to(PACKAGE.parent)
                found.append(f"{where}:{node.lineno} {node.name} has {lines} lines (> {limit})")
    return found


def test_no_class_over_300_lines_and_no_function_over_80() -> None:
    assert oversized() == []
