"""What the ``eventlab`` commands share: the connection they open, how an error becomes one
line, and the plots they write."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from .._connection import MongoConnectionManager
from .._errors import EventlabError
from ..embedded import EmbeddedMongo
from ._serve import DEFAULT_STORAGE, running_serve

T = TypeVar("T")

_PLOT_FORMATS = {"png", "svg", "pdf", "jpg", "jpeg", "webp"}


def fail(message: str) -> NoReturn:
    raise typer.Exit(code=_error_line(message))


def run_command(context: typer.Context, coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a command: its errors become one line and exit code 1 (``--debug``: the traceback).

    eventlab's typed errors and file errors are expected misuse and say what went wrong; any
    other exception is a bug, reported as such instead of a 100-line traceback.
    ``context``: the command's, whose root holds ``eventlab --debug``.
    """
    try:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if context.find_root().params.get("debug"):
            raise
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
    in ``.eventlab/serve.json``); without that, commands whose data must outlive them start the
    embedded server on ``./.eventlab/data`` for their duration, the others a temporary one."""
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


class OneLineErrors(TyperGroup):
    """The ``eventlab`` command group: a usage error (an unknown option, a bad value) is one
    line on stderr and exit code 1, like every other misuse, instead of a boxed usage text."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, *, standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            outcome = super().main(args, prog_name, standalone_mode=False, **extra)
        except typer.Abort:
            outcome = _error_line("aborted")
        except Exception as exc:
            if not _is_click_error(exc):
                raise
            context = getattr(exc, "ctx", None)
            where = f" (see `{context.command_path} --help`)" if context is not None else ""
            message = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
            outcome = _error_line(f"{message}{where}")
        raise SystemExit(outcome if isinstance(outcome, int) else 0)


def _error_line(message: str) -> int:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return 1


def _is_click_error(exc: BaseException) -> bool:
    """A usage or parameter error of the command line parser (typer's bundled click)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)
