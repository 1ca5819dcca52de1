"""The README's Python blocks run as written, in order, in one namespace, like notebook cells
(top-level ``await``), so the README cannot drift from the code."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_the_readme_has_its_blocks() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert "EmbeddedMongo" in blocks[0] and "server.stop()" in blocks[-1]


@pytest.mark.slow
@pytest.mark.parametrize("where", [".", "notebooks"], ids=["from-the-root", "from-notebooks"])
async def test_every_readme_block_runs_as_written(
    where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # From the repository's root and from notebooks/, where the README opens JupyterLab.
    monkeypatch.chdir(ROOT / where)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for number, source in enumerate(python_blocks(), start=1):
        code = compile(
            source, f"README.md block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        result = eval(code, namespace)
        if isinstance(result, types.CoroutineType):
            await result
    printed = capsys.readouterr().out
    assert "placed" in printed and "1 OrderPlaced" in printed
    assert "DHL" in printed, "the in-memory example's code ran on MongoDB too"
    diff = namespace["diff_projections"](  # type: ignore[operator]
        namespace["OrderTotals"](),  # type: ignore[operator]
        namespace["OrderTotalsV2"](),  # type: ignore[operator]
        namespace["orders"],
    )
    assert len(diff) > 0 and set(diff.field) == {"total"}, "the diff example shows a difference"
    server = namespace["server"]
    assert not server.running  # type: ignore[attr-defined]  # the last block stopped it
