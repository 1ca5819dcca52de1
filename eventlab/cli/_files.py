"""``eventlab import`` and ``eventlab export``: events to and from files (JSON Lines or
Parquet), in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._core.errors import EventlabError
from ._keys import CheckedKeys
from ._options import (
    CollectionOption,
    DatabaseOption,
    FormatOption,
    ImportRegistryOption,
    KeysCollectionOption,
    PathArgument,
    UriOption,
)
from ._support import connection, count_of, run_command
from ._targets import check_store_exists

if TYPE_CHECKING:
    pass


def import_command(
    context: typer.Context,
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    preserve_positions: Annotated[
        bool,
        typer.Option(
            "--preserve-positions",
            help="Keep the file's positions (restore a backup into an empty store).",
        ),
    ] = False,
    events_collection: CollectionOption = "domain_events",
    file_format: FormatOption = None,
    registry: ImportRegistryOption = None,
    keys_collection: KeysCollectionOption = "personal_keys",
) -> None:
    """Import events from a file (JSON Lines or Parquet).

    With --registry, the personal fields its classes declare are sealed with their
    subjects' keys (--keys-collection) as they are imported; without it, plain text in a
    field the store's events of that type hold sealed is refused (docs/forgetting.md).

    The whole file is checked, then checked against the store, before anything is written:
    an event id stored with other content is an error naming it. Then chunk by chunk, each in
    a transaction; events stored already with the same content are skipped, so an import that
    stopped part-way resumes when run again.
    """
    from tqdm import tqdm

    from .._mongo.event_store import MongoEventStore
    from .._mongo.keys import MongoKeyStore
    from ..workbench._files import file_format as format_of
    from ..workbench._files import iter_event_chunks
    from ._import_personal import personal_chunks
    from ._importing import check_file, write_file
    from ._user_code import load_registry

    async def run() -> None:
        kind = format_of(file, file_format)
        if file.exists() and not file.is_dir() and not file.is_file():
            # A pipe or a device can be read once; a large file is read twice (checked
            # whole, then written), so a second read would find nothing or wait for ever.
            raise EventlabError(
                f"{file} is not a regular file (a pipe or a device): import reads a large "
                "file twice, checked whole and then written; save it to a file first"
            )

        def file_chunks() -> Iterator[list[Any]]:
            return iter_event_chunks(file, kind)

        # Before connecting: a bad file is one line.
        total, chunks = check_file(file, file_chunks, preserve_positions=preserve_positions)
        events_registry = load_registry(registry) if registry is not None else None
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn, events_collection=events_collection)
            chunks = await personal_chunks(
                store, chunks, file, events_registry, MongoKeyStore(conn, keys_collection)
            )
            with tqdm(total=total, unit="event", disable=None, desc="import") as bar:
                outcome = await write_file(
                    store, file, chunks, total, preserve_positions=preserve_positions, bar=bar
                )
            if preserve_positions:
                resumed = (
                    f"; {outcome.skipped:,} were stored already (resumed)"
                    if outcome.skipped
                    else ""
                )
                typer.echo(
                    f"restored {outcome.written:,} events from {file} (positions kept){resumed}"
                )
                return
            typer.echo(
                f"imported {count_of(outcome.written, 'new event')} from {file}, "
                f"skipped {count_of(outcome.skipped, 'event')} already stored"
            )

    run_command(context, run)


def export_command(
    context: typer.Context,
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    file_format: FormatOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
    flat: Annotated[
        bool,
        typer.Option(
            "--flat",
            help="A Hive-partitioned Parquet dataset of typed columns in the directory FILE, "
            "for DuckDB, Polars and Spark; run again, it adds what came after.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="--flat: from this time (ISO, UTC)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="TIME", help="--flat: before this time (ISO, UTC)."),
    ] = None,
    event_types: Annotated[
        list[str] | None,
        typer.Option(
            "--event-type", metavar="TYPE", help="--flat: only this event type (repeatable)."
        ),
    ] = None,
    streams: Annotated[
        list[str] | None,
        typer.Option("--stream", metavar="ID", help="--flat: only this stream (repeatable)."),
    ] = None,
    partition_by: Annotated[
        str,
        typer.Option(
            "--partition-by",
            metavar="COLUMNS",
            help="--flat: comma-separated: event_type, day, aggregate_type.",
        ),
    ] = "event_type,day",
    keys_collection: KeysCollectionOption = "personal_keys",
) -> None:
    """Export every event, in position order, to a file; or a flat dataset (--flat).

    JSON Lines, or Parquet for a .parquet file (or --format parquet); in chunks, so memory
    stays flat. --flat writes the frame's typed columns as a Hive-partitioned Parquet
    dataset (docs/frames.md, "A flat export").
    """
    if flat:
        _export_flat(
            context, file, uri, database, events_collection,
            since=since, until=until, event_types=event_types, streams=streams,
            partition_by=[p.strip() for p in partition_by.split(",") if p.strip()],
            keys_collection=keys_collection,
        )  # fmt: skip
        return
    if since or until or event_types or streams:
        raise typer.BadParameter("--since, --until, --event-type and --stream need --flat")
    _export_file(
        context, file, uri, database, events_collection, file_format, force, keys_collection
    )


def _export_flat(
    context: typer.Context,
    directory: Path,
    uri: str | None,
    database: str,
    events_collection: str,
    keys_collection: str,
    **selection: Any,
) -> None:
    from .._mongo.event_store import MongoEventStore
    from .._mongo.keys import MongoKeyStore
    from ..workbench._flat import export_flat

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            # With the key store: personal values stay sealed, forgotten ones become null.
            store = MongoEventStore(
                conn,
                events_collection=events_collection,
                keys=CheckedKeys(MongoKeyStore(conn, keys_collection)),
            )
            await export_flat(store, directory, **selection)

    run_command(context, run)


def _export_file(
    context: typer.Context,
    file: Path,
    uri: str | None,
    database: str,
    events_collection: str,
    file_format: str | None,
    force: bool,
    keys_collection: str,
) -> None:
    from tqdm import tqdm

    from .._core.registry import EventRegistry
    from .._mongo.event_store import MongoEventStore
    from .._mongo.keys import MongoKeyStore
    from .._shred.personal_data import PersonalData
    from ..workbench._files import CHUNK, EventFileWriter
    from ..workbench._files import file_format as format_of

    async def run() -> None:
        writer = EventFileWriter(file, format_of(file, file_format))  # the directory first
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            writer.check_target(overwrite=force)
            store = MongoEventStore(conn, events_collection=events_collection)
            # Read as stored: personal values stay sealed in the file (a copy the key store
            # still governs); those of forgotten subjects are written as "<redacted>".
            keys = CheckedKeys(MongoKeyStore(conn, keys_collection))
            personal = PersonalData(keys, EventRegistry())
            total = await store.count()
            with (
                writer as out,
                tqdm(total=total, unit="event", disable=None, desc="export") as bar,
            ):
                chunk: list[Any] = []
                async for event in store.read_all(page_size=CHUNK):
                    chunk.append(event)
                    if len(chunk) >= CHUNK:
                        out.write(await personal.redact_forgotten(chunk))
                        bar.update(len(chunk))
                        chunk = []
                out.write(await personal.redact_forgotten(chunk))
                bar.update(len(chunk))
            typer.echo(f"exported {out.written:,} events to {file} ({out.format})")

    run_command(context, run)
