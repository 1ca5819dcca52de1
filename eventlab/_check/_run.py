"""Running ``eventlab check``: pre-checks that refuse with one line, then the suites and the
probes in the scratch database, then the verdict table."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .._core.errors import EventlabError
from ._deployment import (
    CheckRefused,
    claim_scratch,
    connected,
    drop_scratch,
    reason,
    scratch_name,
)
from ._verdicts import Report, Verdict

CHECK_EXTRA = (
    "eventlab check needs pytest, pytest-asyncio and hypothesis (the check extra): "
    "pip install './eventlab[check]' from a clone, or uv sync --extra check in it"
)
DEFAULT_EXAMPLES = 10
"""Examples of the stream machine in a check (the others scale from it)."""


def missing_dependencies() -> list[str]:
    return [
        m for m in ("pytest", "pytest_asyncio", "hypothesis") if importlib.util.find_spec(m) is None
    ]


def run_check(
    uri: str,
    *,
    database: str | None = None,
    examples: int = DEFAULT_EXAMPLES,
    echo: Callable[[str], None] = print,
    only: str | None = None,
) -> int:
    """Check eventlab against the deployment at ``uri``; print the verdicts with ``echo``;
    the exit code (0: nothing failed; 1: a failure, or the check could not run).

    ``only``: a pytest ``-k`` expression choosing the suites' tests to run (the probes always
    run), e.g. to run one suite again after fixing the deployment."""
    if missing_dependencies():
        echo(CHECK_EXTRA)
        return 1
    try:
        scratch = scratch_name(database)
        report = asyncio.run(_prepare(uri, scratch))
    except (EventlabError, CheckRefused) as exc:  # refused before anything ran: one line
        echo(f"eventlab check: {reason(exc, uri)}")
        return 1
    try:
        report.verdicts += _suites(uri, scratch, examples, only)
        report.verdicts += asyncio.run(_probes(uri, scratch))
    finally:
        dropped = asyncio.run(_drop(uri, scratch))
    if dropped is not None:
        report.add(Verdict("scratch database dropped", "failed", dropped))
    for line in report.lines():
        echo(line)
    return 1 if report.failed else 0


async def _prepare(uri: str, scratch: str) -> Report:
    async with connected(uri, scratch) as conn:
        info = conn.info
        await claim_scratch(conn, uri)
        return Report(
            header=[
                f"eventlab check of {conn.display_uri} ({info.kind.replace('_', ' ')}, "
                f"server {info.server_version})",
                f"scratch database {scratch} (created for the check, dropped after)",
            ]
        )


async def _probes(uri: str, scratch: str) -> list[Verdict]:
    from ._probes import run_probes

    async with connected(uri, scratch) as conn:
        return await run_probes(conn, uri)


async def _drop(uri: str, scratch: str) -> str | None:
    try:
        async with connected(uri, scratch) as conn:
            await drop_scratch(conn)
    except Exception as exc:  # reported as a verdict: the user must drop it by hand
        return f"could not drop {scratch} ({reason(exc, uri)}): drop it by hand"
    return None


def _suites(uri: str, scratch: str, examples: int, only: str | None = None) -> list[Verdict]:
    """The contract suites and the machines, as one pytest run whose output is collected."""
    import pytest

    from ._plugin import CheckPlugin

    plugin = CheckPlugin(uri, scratch, examples)
    with tempfile.TemporaryDirectory() as directory, _no_plugin_autoload():
        ini = Path(directory) / "pytest.ini"
        ini.write_text(
            "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
            "asyncio_default_test_loop_scope = session\n"
        )
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            pytest.main(
                [
                    str(Path(__file__).with_name("_suite.py")),
                    "-c",
                    str(ini),
                    "--rootdir",
                    directory,
                    "-p",
                    "pytest_asyncio.plugin",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                    "-W",
                    "ignore::DeprecationWarning",
                    *(["-k", only] if only else []),
                ],
                plugins=[plugin],
            )
    return plugin.verdicts()


@contextlib.contextmanager
def _no_plugin_autoload() -> Iterator[None]:
    """The user's own pytest plugins (coverage, xdist, ...) stay out of the check's run."""
    before = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = before
