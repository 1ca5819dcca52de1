"""docs/design.md's plan of the house is drawn from the code (tools/plan.py): it cannot go stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_plan_in_design_md_matches_the_import_graph() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "plan.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_plan_draws_every_layer_and_the_backends_apart() -> None:
    page = (ROOT / "docs" / "design.md").read_text()
    plan = page.split("<!-- plan: generated")[1].split("<!-- plan: end -->")[0]
    for part in ("_core", "ports", "_follow", "_mongo", "memory", "workbench", "cli"):
        assert f'["{part}"]' in plan
    # The two backends never import each other: no edge between their nodes.
    node = {label: ident for ident, label in _nodes(plan)}
    mongo, memory = node["_mongo"], node["memory"]
    assert f"{mongo} --> {memory}" not in plan and f"{memory} --> {mongo}" not in plan


def _nodes(plan: str) -> list[tuple[str, str]]:
    found = []
    for line in plan.splitlines():
        line = line.strip()
        if line.startswith("p") and '["' in line:
            ident, label = line.split('["', 1)
            found.append((ident, label.rstrip('"]')))
    return found
