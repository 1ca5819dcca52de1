"""The ``eventlab`` application: how its command line is parsed, how a usage error becomes one
line, and help that reads at 80 columns (plain text, options named by what they take).

Exit codes: 0 done; 1 the command failed (one line says why); 2 the command line is wrong
(an unknown option, a missing argument, a value of the wrong type); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

USAGE_ERROR = 2
INTERRUPTED = 130


class CommandLineError(Exception):
    """A value on the command line that cannot be right (a port out of range, a malformed
    ``module:attr``, an option missing its companion): one line and exit code 2."""


class Command(TyperCommand):
    """An ``eventlab`` command: arguments in capitals in the usage line and in the help
    (``eventlab import [OPTIONS] FILE``), options with what they take (``--uri URI``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        params = self.get_params(ctx)
        arguments = [
            (argument_name(p), getattr(p, "help", None) or "")
            for p in params
            if p.param_type_name == "argument"
        ]
        options = [
            record
            for p in params
            if p.param_type_name == "option" and (record := p.get_help_record(ctx)) is not None
        ]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def argument_name(param: Any) -> str:
    return str(param.metavar or param.name or "").upper()


class OneLineErrors(TyperGroup):
    """The ``eventlab`` command group: a usage error (an unknown option, a bad value) is one
    line on stderr and exit code 2, instead of a boxed usage text; Ctrl-C is exit code 130."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, *, standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            outcome = super().main(args, prog_name, standalone_mode=False, **extra)
        except (typer.Abort, KeyboardInterrupt):
            outcome = error_line("interrupted", INTERRUPTED)
        except CommandLineError as exc:
            outcome = error_line(str(exc), USAGE_ERROR)
        except Exception as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `eventlab` alone: the help
                typer.echo(exc.format_message())  # type: ignore[attr-defined]
                raise SystemExit(0) from None
            if not _is_click_error(exc):
                raise
            context = getattr(exc, "ctx", None)
            where = f" (see `{context.command_path} --help`)" if context is not None else ""
            message = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
            outcome = error_line(f"{message}{where}", USAGE_ERROR)
        raise SystemExit(outcome if isinstance(outcome, int) else 0)


def error_line(message: str, code: int = 1) -> int:
    """Print ``error: message`` on stderr; the exit code to leave with."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return code


def _is_click_error(exc: BaseException) -> bool:
    """A usage or parameter error of the command line parser (typer's bundled click)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


app = typer.Typer(
    cls=OneLineErrors,
    help="eventlab: an event-sourcing workbench on MongoDB.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help: readable at 80 columns and in a log, and no rich import for `--help`.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console entry point (``eventlab``)."""
    try:
        app()
    except KeyboardInterrupt:  # before the command group runs (still importing)
        raise SystemExit(error_line("interrupted", INTERRUPTED)) from None


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
) -> None:
    """eventlab: an event-sourcing workbench on MongoDB."""
