"""``eventlab import`` and ``eventlab export``: events to and from files (JSON Lines or
Parquet), in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._core.errors import EventlabError
from ._options import CollectionOption, DatabaseOption, FormatOption, PathArgument, UriOption
from ._support import connection, count_of, run_command
from ._targets import check_store_exists

if TYPE_CHECKING:
    from .._mongo.event_store import MongoEventStore


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
) -> None:
    """Import events from a file (JSON Lines or Parquet).

    In chunks, each in a transaction; the whole file is checked before anything is written.
    Events already stored (by event id) are skipped.
    """
    from .._mongo.event_store import MongoEventStore
    from ..workbench._files import StreamCheck, iter_event_chunks
    from ..workbench._files import file_format as format_of

    async def run() -> None:
        kind = format_of(file, file_format)
        check = StreamCheck()
        for chunk in iter_event_chunks(file, kind):  # a malformed record stops here
            check.take(chunk)
        if check.problems:
            raise EventlabError(
                f"{file}: refusing to import a file that breaks stream invariants "
                f"({'; '.join(check.problems)}); examine it with `eventlab gaps --file {file}`"
            )
        if not check.ordered:
            raise EventlabError(
                f"{file}: refusing to import a file whose events are not in position order "
                "(a position repeated or going back; an export is in order): examine it with "
                f"`eventlab gaps --file {file}`"
            )
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn, events_collection=events_collection)
            if preserve_positions:
                stored = await store.count()
                if stored:
                    raise EventlabError(
                        f"the store already holds {stored:,} events: --preserve-positions "
                        "restores a backup into an empty store (or a new --database); without "
                        "it the file is appended, and events already stored are skipped"
                    )
            written, skipped = await _import_chunks(
                store, iter_event_chunks(file, kind), check.events, preserve_positions
            )
            if preserve_positions:
                typer.echo(f"restored {written:,} events from {file} (positions kept)")
                return
            typer.echo(
                f"imported {count_of(written, 'new event')} from {file}, "
                f"skipped {count_of(skipped, 'event')} already stored"
            )

    run_command(context, run)


async def _import_chunks(
    store: MongoEventStore, chunks: Iterator[list[Any]], total: int, restore: bool
) -> tuple[int, int]:
    """Write the file chunk by chunk: restored as they are, or appended (what is not stored
    yet, by event id, each stream at its own versions, a chunk per transaction)."""
    from tqdm import tqdm

    written = skipped = 0
    with tqdm(total=total, unit="event", disable=None, desc="import") as bar:
        for chunk in chunks:
            if restore:
                written += await store.restore(chunk, progress=False)
            else:
                new = await _append_new(store, chunk)
                written += new
                skipped += len(chunk) - new
            bar.update(len(chunk))
    return written, skipped


async def _append_new(store: MongoEventStore, chunk: list[Any]) -> int:
    """Append the events of ``chunk`` not stored yet; returns how many were written."""
    from itertools import groupby

    from .._mongo.unit_of_work import run_unit_of_work

    added = 0
    for start in range(0, len(chunk), 500):
        part = chunk[start : start + 500]
        ids = [e.event_id for e in part]
        present = {doc["_id"] async for doc in store.events.find({"_id": {"$in": ids}}, {"_id": 1})}
        new = [
            replace(e, position=None, recorded_at=None) for e in part if e.event_id not in present
        ]
        runs = [list(run) for _, run in groupby(new, key=lambda e: e.aggregate_id)]

        async def write(uow: Any, runs: list[list[Any]] = runs) -> None:
            for run in runs:
                await store.append(run[0].aggregate_id, run, run[0].version - 1, uow=uow)

        if runs:
            await run_unit_of_work(store.connection, write)
        added += len(new)
    return added


def export_command(
    context: typer.Context,
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    file_format: FormatOption = None,
) -> None:
    """Export every event, in position order, to a file.

    JSON Lines, or Parquet for a .parquet file (or --format parquet); in chunks, so memory
    stays flat.
    """
    from tqdm import tqdm

    from .._mongo.event_store import MongoEventStore
    from ..workbench._files import CHUNK, EventFileWriter
    from ..workbench._files import file_format as format_of

    async def run() -> None:
        writer = EventFileWriter(file, format_of(file, file_format))  # the directory first
        async with connection(uri, database, announce=False, persistent=True) as conn:
            await check_store_exists(conn, events_collection)
            store = MongoEventStore(conn, events_collection=events_collection)
            total = await store.count()
            with (
                writer as out,
                tqdm(total=total, unit="event", disable=None, desc="export") as bar,
            ):
                chunk: list[Any] = []
                async for event in store.read_all(page_size=CHUNK):
                    chunk.append(event)
                    if len(chunk) >= CHUNK:
                        out.write(chunk)
                        bar.update(len(chunk))
                        chunk = []
                out.write(chunk)
                bar.update(len(chunk))
            typer.echo(f"exported {out.written:,} events to {file} ({out.format})")

    run_command(context, run)
