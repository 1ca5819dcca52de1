"""The ``eventlab`` command line: ``tour``, ``serve``, ``import``, ``export``, ``stats``, ``gaps``,
``replay``, ``migrate``, ``projections``, ``rebuild``.

Every command takes ``--uri`` (default ``$EVENTLAB_MONGODB_URI``, else an embedded server).
Failures print one clear line and exit non-zero; no tracebacks for expected errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ._cli_support import (
    OneLineErrors,
    changes_line,
    check_plot_path,
    connection,
    count_of,
    fail,
    run_command,
    save_figure,
)
from ._connection import URI_ENV_VAR
from ._errors import EventlabError
from ._event_store import MongoEventStore
from ._projector import Projector
from ._serve import DEFAULT_STORAGE, SERVE_FILE
from .embedded import EmbeddedMongo

app = typer.Typer(
    cls=OneLineErrors,
    help="eventlab: an event-sourcing workbench on MongoDB.",
    no_args_is_help=True,
    add_completion=False,
)

UriOption = Annotated[
    str | None,
    typer.Option(
        "--uri",
        envvar=URI_ENV_VAR,
        help="MongoDB URI (default: $EVENTLAB_MONGODB_URI, else an embedded server).",
        show_default=False,
    ),
]
DatabaseOption = Annotated[str, typer.Option("--database", "-d", help="Database name.")]
CollectionOption = Annotated[
    str,
    typer.Option(
        "--events-collection",
        help="The events collection (an `eventsourcing` application's: <app name>_events).",
    ),
]


def main() -> None:
    """Console entry point."""
    app()


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
) -> None:
    """eventlab: an event-sourcing workbench on MongoDB."""


@app.command()
def tour(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab_tour",
    reports: Annotated[Path, typer.Option(help="Where the plots go.")] = Path("reports"),
) -> None:
    """Walk through eventlab end to end on sample data (the README's main command)."""
    from ._tour import run_tour

    run_command(context, lambda: run_tour(uri, database, reports))


@app.command()
def serve(
    storage: Annotated[
        Path, typer.Option(help="Where the data lives (kept across restarts).")
    ] = DEFAULT_STORAGE,
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1 (default: a free one; 27017 is mongod's).")
    ] = 0,
    test_commands: Annotated[
        bool, typer.Option(help="Enable fail points (configureFailPoint).")
    ] = False,
) -> None:
    """Run the embedded server in the foreground until Ctrl-C."""
    if not 0 <= port <= 65535:
        fail(f"--port must be a TCP port from 1 to 65535 (0: a free one), got {port}")
    server = EmbeddedMongo(
        storage_path=storage, port=port or None, enable_test_commands=test_commands
    )
    try:
        server.start()
    except EventlabError as exc:
        fail(str(exc))
    assert server.storage_path is not None
    record = {"uri": server.uri, "pid": os.getpid(), "storage": str(storage.resolve())}
    if storage.resolve() == DEFAULT_STORAGE.resolve():
        SERVE_FILE.parent.mkdir(exist_ok=True)
        SERVE_FILE.write_text(json.dumps(record))
    typer.echo(f"eventlab embedded server on {server.uri}")
    typer.echo(f"data in {server.storage_path} (durable commits); Ctrl-C to stop")
    typer.echo("eventlab commands run here use it by themselves; elsewhere:")
    typer.echo(f"  export {URI_ENV_VAR}='{server.uri}'")
    stop = False

    def request_stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stop and server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(SERVE_FILE.read_text()).get("pid") == os.getpid():
                SERVE_FILE.unlink()
    typer.echo("stopped")


@app.command()
def migrate(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: Annotated[str, typer.Option(help="Events collection.")] = "domain_events",
    query_indexes: Annotated[
        bool,
        typer.Option(
            help="Also create the query indexes (by aggregate type and time, correlation id, "
            "event type); each costs every append."
        ),
    ] = False,
) -> None:
    """Apply the event store's index migrations (idempotent)."""

    async def run() -> None:
        async with connection(uri, database, announce=False) as conn:
            store = MongoEventStore(conn, events_collection=events_collection, auto_migrate=False)
            result = await store.migrate(query_indexes=query_indexes)
            for migration_id in result.applied:
                typer.echo(f"applied  {migration_id}")
            for migration_id in result.already_applied:
                typer.echo(f"present  {migration_id}")

    run_command(context, run)


PathArgument = Annotated[
    Path, typer.Argument(help="A file of events: JSON Lines, or Parquet (.parquet).")
]
FormatOption = Annotated[
    str | None,
    typer.Option("--format", help="jsonl or parquet (default: from the file's suffix)."),
]


@app.command("import")
def import_events(
    context: typer.Context,
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    preserve_positions: Annotated[
        bool, typer.Option(help="Keep the file's positions (restore a backup into an empty store).")
    ] = False,
    events_collection: CollectionOption = "domain_events",
    file_format: FormatOption = None,
) -> None:
    """Import events from a file, in chunks (the whole file is checked before writing)."""
    from .workbench._files import StreamCheck, iter_event_chunks
    from .workbench._files import file_format as format_of

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

    from ._unit_of_work import run_unit_of_work

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


@app.command("export")
def export_events(
    context: typer.Context,
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
    file_format: FormatOption = None,
) -> None:
    """Export every event, in position order, in chunks: JSON Lines or Parquet."""
    from tqdm import tqdm

    from .workbench._files import CHUNK, EventFileWriter
    from .workbench._files import file_format as format_of

    async def run() -> None:
        kind = format_of(file, file_format)
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn, events_collection=events_collection)
            total = await store.count()
            with (
                EventFileWriter(file, kind) as out,
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
            typer.echo(f"exported {out.written:,} events to {file} ({kind})")

    run_command(context, run)


@app.command()
def stats(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Events, streams and types in a store."""

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
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
            span = last["position"] - (first[0].position or 0) + 1 if first else 0
            typer.echo(
                f"positions {first[0].position}..{last['position']}: {span - total:,} missing"
            )

    run_command(context, run)


@app.command()
def gaps(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    file: Annotated[Path | None, typer.Option(help="Examine a JSON Lines file instead.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the gap plot (PNG) here.")] = None,
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Find position gaps, version gaps, duplicates and out-of-order events."""
    from .workbench import events_frame, find_gaps, load_jsonl, read_frame

    async def run() -> None:
        if plot is not None:
            check_plot_path(plot)
        if file is not None:
            frame = events_frame(load_jsonl(file))
        else:
            async with connection(uri, database, announce=False, persistent=True) as conn:
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


@app.command()
def projections(
    context: typer.Context, uri: UriOption = None, database: DatabaseOption = "eventlab"
) -> None:
    """The sample projections' read models: generation, checkpoint, lag, rows."""

    async def run() -> None:
        from .samples import SAMPLE_PROJECTIONS

        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn)
            typer.echo(
                f"{'projection':<14} {'version':>7} {'gen':>4} {'position':>9} {'behind':>7} "
                f"{'seconds':>8} {'rows':>7}"
            )
            lagging = []
            for projection_class in SAMPLE_PROJECTIONS.values():
                s = await Projector(store, projection_class()).status()
                stale = "  (stale: rebuild)" if s.stale else ""
                typer.echo(
                    f"{s.name:<14} {s.version:>7} {s.generation:>4} {s.position:>9,} "
                    f"{s.behind:>7,} {s.seconds_behind:>8.1f} {s.rows:>7,}{stale}"
                )
                if s.behind or s.stale:
                    lagging.append(s.name)
            if lagging:
                typer.echo(
                    f"\n{', '.join(lagging)} not caught up: a Projector running in your service "
                    "catches up by itself (Projector(store, ...).start()); here, "
                    f"`eventlab rebuild {lagging[0]}` builds it afresh from the whole log"
                )

    run_command(context, run)


@app.command()
def rebuild(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="A sample projection: order_totals, open_tasks.")],
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
) -> None:
    """Rebuild a projection's read model beside the live one, then swap it in."""

    async def run() -> None:
        from .samples import SAMPLE_PROJECTIONS

        if name not in SAMPLE_PROJECTIONS:
            raise EventlabError(
                f"no projection named {name!r}; known: {', '.join(sorted(SAMPLE_PROJECTIONS))}"
            )
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn)
            started = time.perf_counter()
            status = await Projector(store, SAMPLE_PROJECTIONS[name]()).rebuild()
            typer.echo(
                f"rebuilt {status.name}: generation {status.generation}, {status.rows:,} rows "
                f"at position {status.position:,} in {time.perf_counter() - started:.1f}s"
            )

    run_command(context, run)


@app.command("replay")
def replay_command(
    context: typer.Context,
    aggregate_id: Annotated[str, typer.Argument(help="The stream to rebuild.")],
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
) -> None:
    """Rebuild one aggregate of the sample domains step by step."""
    from .samples import Chat, Order, chat_registry, order_registry
    from .workbench import replay

    classes = {"Order": Order, "Chat": Chat}

    async def run() -> None:
        async with connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn)
            events = await store.read_stream(aggregate_id)
        if not events:
            raise EventlabError(f"no events stored for {aggregate_id!r}")
        kind = events[0].aggregate_type
        if kind not in classes:
            raise EventlabError(f"no sample aggregate class for type {kind!r} (known: Order, Chat)")
        trace = replay(classes[kind], events, registry=chat_registry(order_registry()))
        for step in trace.steps:
            marker = f"  ERROR {step.error}" if step.error else ""
            typer.echo(
                f"v{step.version:<3} {step.event_type:<20} {changes_line(step.changes)}{marker}"
            )

    run_command(context, run)


if __name__ == "__main__":  # pragma: no cover
    main()


@app.command()
def check(
    uri: Annotated[
        str,
        typer.Argument(
            envvar=URI_ENV_VAR,
            help="The deployment to check (default: $EVENTLAB_MONGODB_URI).",
            show_default=False,
        ),
    ],
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="The scratch database (default: a fresh eventlab_check_<hex>); it must not "
            "exist, and is dropped after.",
            show_default=False,
        ),
    ] = None,
    examples: Annotated[
        int, typer.Option(help="Examples of the model-based run (bounded).", min=1, max=10_000)
    ] = 10,
) -> None:
    """Verify eventlab on your deployment: contract suites, a model-based run and concurrency
    probes in a scratch database, then a verdict table."""
    from ._check import run_check

    code = run_check(uri, database=database, examples=examples, echo=typer.echo)
    if code:
        raise typer.Exit(code)
