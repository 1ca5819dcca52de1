"""docs/lifecycle.md's example runs as written and prints what the page says it prints, and
the page is in the site's navigation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "lifecycle.md"


def test_the_example_prints_what_the_page_shows() -> None:
    page = PAGE.read_text()
    (block,) = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    shown = page[page.index("It prints:") :].split("```text\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == shown


def test_the_page_is_in_the_navigation() -> None:
    assert "lifecycle.md" in (ROOT / "mkdocs.yml").read_text()
