"""``eventlab migrate``, ``stats`` and ``gaps``: a store's indexes, contents and anomalies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._options import CollectionOption, DatabaseOption, UriOption
from ._support import check_plot_path, connection, run_command, save_figure
from ._targets import check_store_exists


def migrate_command(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    query_indexes: Annotated[
        bool,
        typer.Option(
            "--query-indexes",
            help="Also create the query indexes (by aggregate type and time, correlation id, "
            "event type); each costs every append.",
        ),
    ] = False,
) -> None:
    """Apply the event store's index migrations (idempotent)."""
    from .._mongo.event_store import MongoEventStore

    async def run() -> None:
        async with connection(uri, database, announce=False) as conn:
            store = MongoEventStore(conn, events_collection=events_collection, auto_migrate=False)
            result = await store.migrate(query_indexes=query_indexes)
            for migration_id in result.applied:
                typer.echo(f"applied  {migration_id}")
            for migration_id in result.already_applied:
                typer.echo(f"present  {migration_id}")

    run_command(context, run)


def stats_command(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Events, streams and types in a store."""
    from .._mongo.event_store import MongoEventStore

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            store = MongoEventStore(conn, events_collection=events_collection)
            total = await store.count()
            if total == 0:
                typer.echo("the store is empty")
                return
            pipeline: list[dict[str, Any]] = [
                {"$group": {"_id": {"t": "$aggregate_type", "e": "$event_type"}, "n": {"$sum": 1}}},
                {"$sort": {"_id.t": 1, "n": -1}},
            ]
            rows = await (await store.events.aggregate(pipeline)).to_list(None)
            streams = len(await store.stream_ids())
            first = await store.read_all(max_count=1).to_list()
            last = await store.events.find_one({}, sort=[("position", -1)])
            assert last is not None
            typer.echo(
                f"{total:,} events in {streams:,} streams ({store.position_strategy} positions)"
            )
            for row in rows:
                typer.echo(f"  {row['_id']['t']:<10} {row['_id']['e']:<22} {row['n']:>8,}")
            archive = await store.log.archive_reader.markers.get()
            if archive is not None:
                typer.echo(f"{archive.events:,} more archived at {archive.location}")
                total += archive.events
            span = last["position"] - (first[0].position or 0) + 1 if first else 0
            typer.echo(
                f"positions {first[0].position}..{last['position']}: {span - total:,} missing"
            )

    run_command(context, run)


def gaps_command(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Examine a file of events (JSON Lines, or Parquet) instead of a store.",
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the gap plot (PNG) here.")
    ] = None,
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Report gaps, duplicates and events out of order.

    Position gaps, version gaps, duplicate versions, streams not starting at 1, events
    recorded out of order: in a store, or in a file (--file).
    """
    from .._mongo.event_store import MongoEventStore
    from ..workbench import events_frame, find_gaps, read_frame
    from ..workbench._files import file_format, iter_event_chunks

    async def run() -> None:
        if plot is not None:
            check_plot_path(plot)
        if file is not None:
            kind = file_format(file)  # JSON Lines or Parquet, by the suffix
            frame = events_frame(
                [event for chunk in iter_event_chunks(file, kind) for event in chunk]
            )
        else:
            async with connection(uri, database, announce=False, persistent=True) as conn:
                await check_store_exists(conn, events_collection)
                frame = await read_frame(MongoEventStore(conn, events_collection=events_collection))
        report = find_gaps(frame)
        for name, count in report.summary().items():
            typer.echo(f"{name:<26} {count:>8,}")
        for title, table in (
            ("position gaps", report.position_gaps),
            ("duplicate versions", report.duplicate_versions),
            ("version gaps", report.version_gaps),
            ("streams not starting at 1", report.streams_not_starting_at_1),
            ("recorded out of order", report.out_of_order),
        ):
            if len(table):
                typer.echo(f"\n{title}:\n{table.head(20).to_string(index=False)}")
        if plot is not None:
            plot.parent.mkdir(parents=True, exist_ok=True)
            save_figure(report.plot(frame), plot)
            typer.echo(f"\nwrote {plot}")

    run_command(context, run)
