"""``eventlab --help`` and a usage error, as a new user meets them: nothing heavy imported
(the driver, pandas, pyarrow, matplotlib; pydantic is typer's own), help that reads at 80
columns, and exit codes that say what happened (0 help, 2 a wrong command line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("pandas", "pyarrow", "matplotlib", "pymongo", "bson", "tqdm", "rich", "opentelemetry")
COMMANDS = (
    "tour",
    "serve",
    "migrate",
    "import",
    "export",
    "stats",
    "gaps",
    "delete",
    "truncate",
    "retention",
    "scavenge",
    "replay",
    "projections",
    "rebuild",
)

RUN = """
import json, sys
sys.argv = ["eventlab", *json.loads(sys.argv[1])]
from eventlab.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def eventlab(*args: str) -> tuple[int, str, str, set[str]]:
    """Run the ``eventlab`` command in a fresh interpreter at 80 columns: exit code, stdout,
    stderr, and the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"},
    )
    output, _, tail = done.stdout.rpartition("\n@@")
    assert tail, done.stderr[-2000:]
    found = json.loads(tail)
    return found["code"], output, done.stderr, {m.split(".")[0] for m in found["modules"]}


@pytest.mark.parametrize("args", [(), ("--help",), *((c, "--help") for c in COMMANDS)])
def test_help_imports_nothing_heavy_and_reads_at_80_columns(args: tuple[str, ...]) -> None:
    code, output, stderr, imported = eventlab(*args)
    assert code == 0, stderr
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert output.startswith("Usage: eventlab"), output
    too_wide = [line for line in output.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    for unreadable in ("<bool>", "<str>", "<int>", "<path>", "{", "…", "╭"):
        assert unreadable not in output, (unreadable, output)


def test_arguments_and_options_say_what_they_take() -> None:
    _, usage, _, _ = eventlab("import", "--help")
    assert "Usage: eventlab import [OPTIONS] FILE" in usage
    assert "--uri URI" in usage and "$EVENTLAB_MONGODB_URI" in usage
    assert "--preserve-positions  " in usage and "--no-preserve-positions" not in usage
    _, replay, _, _ = eventlab("replay", "--help")
    assert "--registry MODULE:ATTR" in replay and "AGGREGATE_ID" in replay


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stats", "--nope"), "No such option: --nope (see `eventlab stats --help`)"),
        (("import",), "Missing argument 'FILE' (see `eventlab import --help`)"),
        (("serve", "--port", "abc"), "Invalid value for '--port'"),
        (("no-such-command",), "No such command 'no-such-command'"),
    ],
    ids=["unknown option", "missing argument", "bad value", "unknown command"],
)
def test_a_usage_error_is_one_line_exit_2_and_imports_nothing_heavy(
    args: tuple[str, ...], message: str
) -> None:
    code, output, stderr, imported = eventlab(*args)
    assert code == 2
    assert output == "" and stderr.startswith("error: ") and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
