"""Generate eventlab's synchronous modules from their async sources.

``eventlab/_mongo/transactions.py`` (the transaction runner) and ``eventlab/_dcb/decisions.py`` (the
decision logic of Dynamic Consistency Boundaries) are written by hand; their ``_sync`` twins
are generated from them with ``unasync`` and a table of name replacements, the way PyMongo
generates ``pymongo/synchronous`` from ``pymongo/asynchronous`` (tools/synchro.py there). A
behaviour fixed in the async source is then fixed in the sync one, which the ``eventsourcing``
module uses. ``tests/test_transaction_policy.py`` and ``tests/fast/test_generated.py`` fail
when a generated file is out of date.

    uv run python tools/synchro.py          # regenerate
    uv run python tools/synchro.py --check  # exit 1 if a generated file is stale
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tokenize_rt
import unasync

ROOT = Path(__file__).resolve().parent.parent

REPLACEMENTS = {
    "AsyncClientSession": "ClientSession",
    "asynchronous": "synchronous",
    "asyncio": "time",
    "reach": "reach_sync",
}
"""Names the async sources use and their synchronous counterparts."""


@dataclass(frozen=True)
class Target:
    """One generated module: its async source, and what its docstring says."""

    source: str
    target: str
    summary: str
    replacements: dict[str, str] = field(default_factory=dict)

    def header(self) -> str:
        return (
            f'"""Generated from ``{self.source}`` by ``tools/synchro.py``: do not edit.\n\n'
            f'{self.summary}"""\n'
        )


TARGETS = (
    Target(
        "_mongo/transactions.py",
        "_mongo/transactions_sync.py",
        "The synchronous twin of eventlab's transaction runner (see that module), for the\n"
        "``eventsourcing`` module's recorders, which run on PyMongo's synchronous client.",
    ),
    Target(
        "_dcb/decisions.py",
        "_dcb/decisions_sync.py",
        "The synchronous twin of the decision logic of Dynamic Consistency Boundaries (see that\n"
        "module), for the ``eventsourcing`` module's DCB recorder.",
        {"reach": "reach_sync"},  # a race point reached by sync code
    ),
)


def generate(target: Target) -> str:
    """The sync module's text, from the async source."""
    rule = unasync.Rule("/", "/", additional_replacements={**REPLACEMENTS, **target.replacements})
    source = ROOT / "eventlab" / target.source
    tokens = tokenize_rt.src_to_tokens(source.read_text())
    text = tokenize_rt.tokens_to_src(list(rule._unasync_tokens(tokens)))
    text = re.sub(r"Awaitable\[(\w+)\]", r"\1", text)  # a sync callback returns its value
    text = text.replace(", Awaitable", "").replace("Awaitable, ", "")
    text = _dedupe_imports(text)
    docstring_end = text.index('"""', 3) + 3
    return _formatted(target.header() + "\n" + text[docstring_end:].lstrip("\n"), target)


def _formatted(text: str, target: Target) -> str:
    """``text`` as the project's ruff would leave it (imports sorted, formatted)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / Path(target.target).name
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
    stale = []
    for target in TARGETS:
        generated = generate(target)
        path = ROOT / "eventlab" / target.target
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != generated:
                stale.append(target.target)
            continue
        path.write_text(generated)
        print(f"wrote {path.relative_to(ROOT)}")
    for name in stale:
        print(f"{name} is out of date: run `uv run python tools/synchro.py`")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
