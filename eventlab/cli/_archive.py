"""``eventlab archive`` and ``eventlab archive restore``: a store's old events moved into
Parquet files that every read reads through, and put back (docs/archive.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._app import Command, CommandLineError
from ._options import (
    ArchiveLocationOption,
    BeforeTimeOption,
    CollectionOption,
    DatabaseOption,
    DryRunOption,
    ThroughOption,
    UriOption,
    _collection,
    _database,
)
from ._support import connection, run_command
from ._targets import check_store_exists

if TYPE_CHECKING:
    from .._archive import ArchiveReport, RestoreReport

# The group's own --database and --events-collection are checked in its body, not by option
# callbacks: a group's callbacks run before its subcommand's --help, and would import the
# driver's bson for `eventlab archive restore --help`.
GroupDatabaseOption = Annotated[
    str, typer.Option("--database", "-d", metavar="NAME", help="The database.")
]
GroupCollectionOption = Annotated[
    str,
    typer.Option("--events-collection", metavar="NAME", help="The events collection."),
]

archive_app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help"]},
)


@archive_app.callback(invoke_without_command=True)
def archive_command(
    context: typer.Context,
    to: ArchiveLocationOption = None,
    through: ThroughOption = None,
    before: BeforeTimeOption = None,
    dry_run: DryRunOption = False,
    uri: UriOption = None,
    database: GroupDatabaseOption = "eventlab",
    events_collection: GroupCollectionOption = "domain_events",
) -> None:
    """Move old events into Parquet files (--to), read through them from then on.

    Every read of the store (streams, the log, subscriptions, frames) reads the archive and
    the live collection as one log. Each stream's first and last events stay live. Files are
    written and checked before any event is removed; a run that was stopped is finished by
    running it again. `eventlab archive restore` puts the events back.
    """
    if context.invoked_subcommand is not None:
        return
    database, events_collection = _database(database), _collection(events_collection)
    if to is None:
        raise CommandLineError("archive needs --to LOCATION (see `eventlab archive --help`)")
    if (through is None) == (before is None):
        raise CommandLineError("archive needs one of --through POSITION and --before TIME")
    from datetime import datetime

    from .._mongo.event_store import MongoEventStore

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            store = MongoEventStore(conn, events_collection=events_collection)
            moment = None if before is None else datetime.fromisoformat(before)
            report = await store.archive(to, through=through, before=moment, dry_run=dry_run)
            typer.echo(_archived(report, f"{database}.{events_collection}"))

    run_command(context, run)


@archive_app.command("restore", cls=Command)
def restore_command(
    context: typer.Context,
    dry_run: DryRunOption = False,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Put every archived event back into the live collection.

    Ids, positions and times are kept; the archive's files stay where they are. Safe while
    the store is in use; a restore that was stopped is finished by running it again.
    """
    from .._mongo.event_store import MongoEventStore

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            store = MongoEventStore(conn, events_collection=events_collection)
            typer.echo(_restored(await store.restore_archive(dry_run=dry_run)))

    run_command(context, run)


def _archived(report: ArchiveReport, store: str) -> str:
    moved = (
        f"{report.archived:,} events (positions {report.first:,}-{report.last:,})"
        if report.first is not None and report.last is not None
        else "no events"
    )
    kept = f"; {report.kept_live:,} kept live (each stream's first and last events)"
    if report.dry_run:
        return (
            f"dry run: would archive {moved} of {store} to {report.location}{kept}; "
            "nothing was written"
        )
    files = f" in {report.files:,} files" if report.files else ""
    return (
        f"archived {moved} of {store} to {report.location}{files}{kept}; the archive holds "
        f"{report.total:,} events up to position {report.through:,}"
    )


def _restored(report: RestoreReport) -> str:
    if report.location is None:
        return "nothing is archived: nothing to restore"
    # An archived event a scavenge removed stays removed: its tombstone holds its position.
    scavenged = f"; {report.scavenged:,} removed by a scavenge left out" if report.scavenged else ""
    if report.dry_run:
        return (
            f"dry run: would restore {report.restored:,} events from {report.location}"
            f"{scavenged}; nothing was written"
        )
    return (
        f"restored {report.restored:,} events from {report.location} (ids and positions "
        f"kept){scavenged}; its files stay"
    )
