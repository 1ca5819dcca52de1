"""The options several commands share, spelled and explained once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .._core.deployment import URI_ENV_VAR

# Checks of option values: a wrong one is a usage error (exit code 2) named by its option.
# They import what they check with only when a value is given, so `--help` stays light.


def _uri(value: str | None) -> str | None:
    if value and not value.startswith(("mongodb://", "mongodb+srv://")):
        raise typer.BadParameter("a MongoDB URI starts with mongodb:// or mongodb+srv://")
    return value


def _database(value: str) -> str:
    from .._core.bson_values import check_database_name
    from .._core.errors import EventlabError

    try:
        return check_database_name(value)
    except EventlabError as exc:
        raise typer.BadParameter(str(exc)) from None


def _collection(value: str) -> str:
    from .._core.bson_values import check_collection_name
    from .._core.errors import EventlabError

    try:
        return check_collection_name(value)
    except EventlabError as exc:
        raise typer.BadParameter(str(exc)) from None


UriOption = Annotated[
    str | None,
    typer.Option(
        "--uri",
        metavar="URI",
        envvar=URI_ENV_VAR,
        show_envvar=False,
        callback=_uri,
        show_default=False,
        help=f"The deployment (mongodb://...). Default: ${URI_ENV_VAR}, else the `eventlab "
        "serve` running in this directory, else an embedded server.",
    ),
]
DatabaseOption = Annotated[
    str,
    typer.Option("--database", "-d", metavar="NAME", help="The database.", callback=_database),
]
CollectionOption = Annotated[
    str,
    typer.Option(
        "--events-collection",
        metavar="NAME",
        callback=_collection,
        help="The events collection (an `eventsourcing` application's: <app name>_events).",
    ),
]
KeysCollectionOption = Annotated[
    str,
    typer.Option(
        "--keys-collection",
        metavar="NAME",
        callback=_collection,
        help="The collection of subjects' data keys (MongoKeyStore's collection).",
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
