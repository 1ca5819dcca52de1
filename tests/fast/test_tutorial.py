"""The tutorial is one source: docs/tutorial.md, and notebook 00 made from it (which the
notebook tests execute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_notebook_00_is_made_from_the_tutorial() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "tutorial_notebook.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_tutorial_covers_a_domain_end_to_end() -> None:
    page = (ROOT / "docs" / "tutorial.md").read_text()
    for step in (
        "class BookAdded(DomainEvent)",
        "@applies(",
        "EventRegistry()",
        "AggregateStore(",
        "read_domain_events(",
        "class OnLoan(Projection)",
        ".subscribe(",
        "read_frame(",
        "MemoryEventStore(",
    ):
        assert step in page, step
