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
ImportRegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        metavar="MODULE:ATTR",
        show_default=False,
        help="Your EventRegistry, e.g. myapp.domain:registry, whose classes' personal fields "
        "are sealed as they are imported (no default). Modules are found in this directory "
        "and the installed packages.",
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


def _archive_location(value: str | None) -> str | None:
    if value is None:
        return None
    from .._archive._location import ArchiveLocation
    from .._core.errors import EventlabError

    try:
        url = ArchiveLocation.of(value).url
    except EventlabError as exc:
        raise typer.BadParameter(str(exc)) from None
    if url.startswith("memory://"):
        # Files in this process's memory vanish when the command ends, with the events it
        # moved there: a location must outlive the command.
        raise typer.BadParameter(
            "memory:// lives only as long as this command: archive to a directory or to "
            "storage that outlives it (s3://, gs://, ...)"
        )
    return url


# -- stream lifecycle (``delete``, ``truncate``, ``retention``, ``scavenge``) ------------------


def _stream(value: str) -> str:
    from .._core.errors import EventlabError
    from .._core.lifecycle import check_stream

    try:
        return check_stream(value)
    except EventlabError as exc:
        raise typer.BadParameter(str(exc)) from None


def _position(value: str) -> int:
    return digits(value, "a position")


def _moment(value: str | None) -> str | None:
    if value is None:
        return None
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value[:60]!r} is not an ISO 8601 time (e.g. 2026-01-31T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{value[:60]!r} has no time zone: add one (Z for UTC, or +02:00)")
    return value


ArchiveLocationOption = Annotated[
    str | None,
    typer.Option(
        "--to",
        metavar="LOCATION",
        callback=_archive_location,
        show_default=False,
        help="Where the archive lives: a directory, or an fsspec URL (s3://bucket/path; "
        "credentials from fsspec's environment, never in the URL).",
    ),
]
ThroughOption = Annotated[
    int | None,
    typer.Option(
        "--through",
        metavar="POSITION",
        parser=_position,
        show_default=False,
        help="Archive the events up to this position of the log.",
    ),
]
BeforeTimeOption = Annotated[
    str | None,
    typer.Option(
        "--before",
        metavar="TIME",
        callback=_moment,
        show_default=False,
        help="Archive the events recorded before this time (ISO 8601 with a time zone).",
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Say what would be done; write and remove nothing."),
]


def digits(value: object, what: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """The one reading of a number on the command line: ASCII digits 0-9 only (no sign,
    space, underscore, exponent or another script's digits, which ``int()`` would take), from
    ``low`` to ``high``; anything else is a usage error naming ``what``."""
    text = str(value)
    # 19 digits hold every 64-bit integer: a longer string is refused before int() sees it.
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if number is None or not low <= number <= high:
        raise typer.BadParameter(
            f"{what} is an integer from {low:,} to {high:,} in digits 0-9, got {text[:40]!r}"
        )
    return number


def _version_or_expectation(value: str | None) -> str | None:
    """An int >= 0, or ``any`` / ``exists``: checked here, converted by the command."""
    if value is None or value in ("any", "exists"):
        return value
    digits(value, "an expected version (or any, exists)")
    return value


def _first_version(value: str) -> int:
    return digits(value, "a version", low=1)


def _count(value: str) -> int:
    return digits(value, "a count", low=1)


def _batch_size(value: str) -> int:
    return digits(value, "a batch size", low=1, high=10_000)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _duration(value: str | None) -> str | None:
    """``90s``, ``30m``, ``12h``, ``7d`` or plain seconds: checked here, converted later."""
    if value is None:
        return value
    duration_seconds(value)
    return value


def _reason(value: str | None) -> str | None:
    from .._core.errors import EventlabError
    from .._core.lifecycle import check_reason

    try:
        return check_reason(value)
    except EventlabError as exc:
        raise typer.BadParameter(str(exc)) from None


def duration_seconds(value: str) -> int:
    """The seconds of a duration: ``90s``, ``30m``, ``12h``, ``7d`` or plain seconds, up to
    365,000 days."""
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    try:
        return digits(number, "", low=1, high=365_000 * 86_400 // _UNITS[unit]) * _UNITS[unit]
    except typer.BadParameter:
        raise typer.BadParameter(
            "a duration is a number in digits 0-9 and s, m, h or d (7d), from 1s to "
            f"365,000d, got {value[:40]!r}"
        ) from None


StreamArgument = Annotated[
    str, typer.Argument(metavar="STREAM", help="The stream's id.", callback=_stream)
]
ExpectedVersionOption = Annotated[
    str,
    typer.Option(
        "--expected-version",
        metavar="VERSION",
        callback=_version_or_expectation,
        help="The version the stream must be at (an int; or any, exists).",
    ),
]
BeforeVersionOption = Annotated[
    int,
    typer.Option(
        "--before", metavar="VERSION", parser=_first_version, help="The first version kept."
    ),
]
MaxCountOption = Annotated[
    int | None,
    typer.Option("--max-count", metavar="N", parser=_count, help="Keep the last N versions."),
]
MaxAgeOption = Annotated[
    str | None,
    typer.Option(
        "--max-age",
        metavar="DURATION",
        callback=_duration,
        help="Keep what was recorded within DURATION (90s, 30m, 12h, 7d).",
    ),
]
ReasonOption = Annotated[
    str | None,
    typer.Option(
        metavar="TEXT",
        callback=_reason,
        help="Recorded in the deletion's event (at most 1,000 characters).",
    ),
]
BatchSizeOption = Annotated[
    int,
    typer.Option(
        "--batch-size",
        metavar="N",
        parser=_batch_size,
        help="Versions examined and events removed per round trip (at most 10,000).",
    ),
]
