"""``eventlab check URI``: eventlab's promises verified on your own deployment."""

from __future__ import annotations

from typing import Annotated

import typer

from .._core.deployment import URI_ENV_VAR


def check_command(
    uri: Annotated[
        str,
        typer.Argument(
            metavar="URI",
            envvar=URI_ENV_VAR,
            help=f"The deployment to check (default: ${URI_ENV_VAR}).",
            show_default=False,
        ),
    ],
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            metavar="NAME",
            help="The scratch database (default: a fresh eventlab_check_<hex>); it must not "
            "exist, and is dropped after.",
            show_default=False,
        ),
    ] = None,
    examples: Annotated[
        int,
        typer.Option(
            metavar="N", help="Examples of the model-based run (bounded).", min=1, max=10_000
        ),
    ] = 10,
) -> None:
    """Verify eventlab on your deployment: contract suites, a model-based run and concurrency
    probes in a scratch database, then a verdict table."""
    from .._check import run_check

    code = run_check(uri, database=database, examples=examples, echo=typer.echo)
    if code:
        raise typer.Exit(code)
