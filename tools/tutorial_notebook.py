"""Make ``notebooks/00_your_domain.ipynb`` from ``docs/tutorial.md``: one source for both.

The page's ```python blocks become code cells, in order; the prose between them becomes
markdown cells. The notebook is executed by the notebook tests, so the tutorial runs in CI;
``tests/fast/test_tutorial.py`` fails when the notebook is out of date.

    uv run python tools/tutorial_notebook.py          # regenerate
    uv run python tools/tutorial_notebook.py --check  # exit 1 if the notebook is stale
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "docs" / "tutorial.md"
TARGET = ROOT / "notebooks" / "00_your_domain.ipynb"
_CODE = re.compile(r"^```python\n(.*?)^```\n?", re.S | re.M)
# Links between docs pages, made to work from notebooks/ (docs/x.md).
_DOC_LINK = re.compile(r"\]\((?!https?:)([a-z_]+\.md)\)")


def notebook(markdown: str) -> nbformat.NotebookNode:
    cells = []
    at = 0
    for block in _CODE.finditer(markdown):
        _add_prose(cells, markdown[at : block.start()])
        cells.append(nbformat.v4.new_code_cell(block.group(1).rstrip("\n")))
        at = block.end()
    _add_prose(cells, markdown[at:])
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for number, cell in enumerate(book.cells):  # stable ids: the file changes only with the page
        cell["id"] = f"cell-{number:02d}"
    return book


def _add_prose(cells: list[nbformat.NotebookNode], text: str) -> None:
    text = _DOC_LINK.sub(r"](../docs/\1)", text.strip())
    if text:
        cells.append(nbformat.v4.new_markdown_cell(text))


def rendered() -> str:
    return nbformat.writes(notebook(SOURCE.read_text()), version=4) + "\n"


def main(argv: list[str]) -> int:
    fresh = rendered()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != fresh:
            print(f"{TARGET.relative_to(ROOT)} is stale: run tools/tutorial_notebook.py")
            return 1
        return 0
    TARGET.write_text(fresh)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
