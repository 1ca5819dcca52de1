"""docs/archive.md's Python blocks run as written, in one namespace (top-level ``await``), on
the in-memory backend, and print what the page says they print."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "archive.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


async def test_the_archive_page_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert blocks
    namespace: dict[str, object] = {"__name__": "__archive_doc__"}
    for number, source in enumerate(blocks, start=1):
        code = compile(source, f"docs/archive.md block {number}", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # fmt: skip
        result = eval(code, namespace)
        if isinstance(result, types.CoroutineType):
            await result
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["6 6", "6", "[1, 2, 3, 4]", "12", "6 12"]
