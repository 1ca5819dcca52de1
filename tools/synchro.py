"""Generate eventlab's synchronous transaction runner from its async source.

``eventlab/_transactions.py`` is written by hand; ``eventlab/_transactions_sync.py`` is
generated from it with ``unasync`` and a table of name replacements, the way PyMongo generates
``pymongo/synchronous`` from ``pymongo/asynchronous`` (tools/synchro.py there). A behaviour
fixed in the async runner is then fixed in the sync one, which the ``eventsourcing`` module
uses. ``tests/test_transactions.py`` fails when the generated file is out of date.

    uv run python tools/synchro.py          # regenerate
    uv run python tools/synchro.py --check  # exit 1 if the generated file is stale
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tokenize_rt
import unasync

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "eventlab" / "_transactions.py"
TARGET = ROOT / "eventlab" / "_transactions_sync.py"

REPLACEMENTS = {
    "AsyncClientSession": "ClientSession",
    "asynchronous": "synchronous",
    "asyncio": "time",
    "reach": "reach_sync",
}
"""Names the async source uses and their synchronous counterparts."""

HEADER = (
    '"""Generated from ``_transactions.py`` by ``tools/synchro.py``: do not edit.\n\n'
    "The synchronous twin of eventlab's transaction runner (see that module), for the\n"
    '``eventsourcing`` module\'s recorders, which run on PyMongo\'s synchronous client."""\n'
)


def generate() -> str:
    """The sync module's text, from the async source."""
    rule = unasync.Rule("/", "/", additional_replacements=REPLACEMENTS)
    tokens = tokenize_rt.src_to_tokens(SOURCE.read_text())
    text = tokenize_rt.tokens_to_src(list(rule._unasync_tokens(tokens)))
    text = re.sub(r"Awaitable\[(\w+)\]", r"\1", text)  # a sync callback returns its value
    text = text.replace(", Awaitable", "").replace("Awaitable, ", "")
    text = _dedupe_imports(text)
    docstring_end = text.index('"""', 3) + 3
    return _formatted(HEADER + "\n" + text[docstring_end:].lstrip("\n"))


def _formatted(text: str) -> str:
    """``text`` as the project's ruff would leave it (imports sorted, formatted)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / TARGET.name
        path.write_text(text)
        config = ["--config", str(ROOT / "pyproject.toml")]
        for command in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
            subprocess.run(["ruff", *command, *config, str(path)], check=True)
        return path.read_text()


def _dedupe_imports(text: str) -> str:
    seen: set[str] = set()
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("import ") and line in seen:
            continue
        if line.startswith("import "):
            seen.add(line)
        lines.append(line)
    return "".join(lines)


def main() -> int:
    generated = generate()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != generated:
            print(f"{TARGET.name} is out of date: run `uv run python tools/synchro.py`")
            return 1
        return 0
    TARGET.write_text(generated)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
