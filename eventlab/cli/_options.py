"""The options several commands share, spelled and explained once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .._core.deployment import URI_ENV_VAR

UriOption = Annotated[
    str | None,
    typer.Option(
        "--uri",
        metavar="URI",
        envvar=URI_ENV_VAR,
        show_envvar=False,
        show_default=False,
        help=f"The deployment (mongodb://...). Default: ${URI_ENV_VAR}, else the `eventlab "
        "serve` running in this directory, else an embedded server.",
    ),
]
DatabaseOption = Annotated[
    str, typer.Option("--database", "-d", metavar="NAME", help="The database.")
]
CollectionOption = Annotated[
    str,
    typer.Option(
        "--events-collection",
        metavar="NAME",
        help="The events collection (an `eventsourcing` application's: <app name>_events).",
    ),
]
PathArgument = Annotated[
    Path,
    typer.Argument(metavar="FILE", help="A file of events: JSON Lines, or Parquet (.parquet)."),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        metavar="FORMAT",
        help="jsonl or parquet (default: from the file's suffix).",
    ),
]
RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        metavar="MODULE:ATTR",
        show_default=False,
        help="Your EventRegistry, e.g. myapp.domain:registry (default: the sample domains'). "
        "Modules are found in this directory and the installed packages.",
    ),
]
AggregateOption = Annotated[
    str | None,
    typer.Option(
        "--aggregate",
        metavar="MODULE:CLASS",
        show_default=False,
        help="Your aggregate class (default: the class named for the stream's aggregate type, "
        "in the --registry module).",
    ),
]
ProjectionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--projection",
        metavar="MODULE:ATTR",
        show_default=False,
        help="A Projection of yours (a class or an instance), e.g. myapp.views:OnLoan; "
        "repeat for more (default: the sample projections).",
    ),
]
