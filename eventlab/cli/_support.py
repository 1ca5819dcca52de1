"""What the ``eventlab`` commands share: running a command (its errors as one line), the
connection it opens, and the plots it writes. The driver, pandas and matplotlib are imported
inside the functions that use them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from .._core.deployment import DEFAULT_STORAGE, running_serve
from .._core.errors import EventlabError
from ._app import CommandLineError, error_line

if TYPE_CHECKING:
    from .._mongo.connection import MongoConnectionManager

T = TypeVar("T")

_PLOT_FORMATS = {"png", "svg", "pdf", "jpg", "jpeg", "webp"}


def fail(message: str) -> NoReturn:
    """Leave the command: ``error: message`` and exit code 1."""
    raise typer.Exit(code=error_line(message))


class UserCodeError(Exception):
    """An exception raised by the user's own code (a projection's handler, an aggregate's
    apply) that a command ran: reported as theirs, with where it happened, not as a bug of
    eventlab's."""


def run_command(context: typer.Context, coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a command: its errors become one line and exit code 1 (``--debug``: the traceback).

    eventlab's typed errors and file errors are expected misuse and say what went wrong; any
    other exception is a bug, reported as such instead of a 100-line traceback.
    ``context``: the command's, whose root holds ``eventlab --debug``.
    """
    try:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    except (typer.Exit, KeyboardInterrupt, BrokenPipeError, CommandLineError):
        raise
    except Exception as exc:
        if context.find_root().params.get("debug"):
            raise
        if isinstance(exc, UserCodeError):
            fail(str(exc))
        if isinstance(exc, EventlabError | OSError):
            fail(str(exc).strip() or type(exc).__name__)  # whole: the reason may be on line two
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        fail(
            f"unexpected {type(exc).__name__}: {first_line} "
            "(a bug: rerun with --debug for the traceback and report it)"
        )


@contextlib.asynccontextmanager
async def connection(
    uri: str | None, database: str, *, announce: bool = True, persistent: bool = False
) -> AsyncIterator[MongoConnectionManager]:
    """Connect to ``uri``. Without one, the running ``eventlab serve`` of this directory (found
    by its claim on ``.eventlab/``); without that, commands whose data must outlive them start
    the embedded server on ``./.eventlab/data`` for their duration, the others a temporary one."""
    from .._mongo.connection import MongoConnectionManager
    from ..embedded import EmbeddedMongo

    async with contextlib.AsyncExitStack() as stack:
        if not uri:  # a running `eventlab serve` here is the server this directory uses
            uri = running_serve()
            if uri and announce:
                typer.echo(f"Using the server of `eventlab serve` at {uri}")
        if not uri:
            if announce:
                typer.echo("Starting an embedded server (SecantusDB on 127.0.0.1)...")
            server = EmbeddedMongo(storage_path=DEFAULT_STORAGE if persistent else None)
            try:
                await stack.enter_async_context(server)
            except EventlabError as exc:
                hint = (
                    f" (is another process using {DEFAULT_STORAGE}? then pass its --uri)"
                    if persistent
                    else ""
                )
                raise EventlabError(f"{str(exc).splitlines()[0]}{hint}") from exc
            uri = server.uri
        conn = await stack.enter_async_context(MongoConnectionManager(uri, database=database))
        if announce:
            info = conn.info
            typer.echo(
                f"Connected to {conn.display_uri} ({info.kind}, server {info.server_version})"
            )
        yield conn


def count_of(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def changes_line(changes: dict[str, tuple[Any, Any]]) -> str:
    from ..workbench._display import show_value

    return ", ".join(
        f"{k}: {show_value(old)} → {show_value(new)}" for k, (old, new) in sorted(changes.items())
    )


def check_plot_path(path: Path) -> None:
    """Refuse a plot path before any work is done: an image format, in a directory that is."""
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        usable = sorted(k for k in formats if k in _PLOT_FORMATS)
        raise EventlabError(
            f"cannot write a plot to {path}: {path.suffix or 'no extension'} is not an image "
            f"format; use one of .{', .'.join(usable)}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist (no plot written)")


def save_figure(figure: Any, path: Path) -> Path:
    check_plot_path(path)
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
