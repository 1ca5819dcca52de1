"""The ``eventlab`` command line: ``tour``, ``serve``, ``migrate``.

Every command takes ``--uri`` (default ``$EVENTLAB_MONGODB_URI``, else an embedded server).
Failures print one clear line and exit non-zero; no tracebacks for expected errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from ._connection import URI_ENV_VAR, MongoConnectionManager
from ._errors import ConcurrencyError, EventlabError
from ._event_store import MongoEventStore
from ._projector import Projector
from ._serve import DEFAULT_STORAGE, SERVE_FILE, running_serve
from .embedded import EmbeddedMongo

T = TypeVar("T")

app = typer.Typer(
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


_OPTIONS = {"debug": False}


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
) -> None:
    """eventlab: an event-sourcing workbench on MongoDB."""
    _OPTIONS["debug"] = debug


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a command: its errors become one line and exit code 1 (``--debug``: the traceback).

    eventlab's typed errors and file errors are expected misuse and say what went wrong; any
    other exception is a bug, reported as such instead of a 100-line traceback.
    """
    try:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _OPTIONS["debug"]:
            raise
        if isinstance(exc, EventlabError | OSError):
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        _fail(
            f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(a bug: rerun with --debug for the traceback and report it)"
        )


_PLOT_FORMATS = {"png", "svg", "pdf", "jpg", "jpeg", "webp"}


@contextlib.asynccontextmanager
async def _connection(
    uri: str | None, database: str, *, announce: bool = True, persistent: bool = False
) -> AsyncIterator[MongoConnectionManager]:
    """Connect to ``uri``. Without one, commands whose data must outlive them use the running
    ``eventlab serve`` (found in ``.eventlab/serve.json``) or start the embedded server on
    ``./.eventlab/data`` for their duration; the others start a temporary one."""
    async with contextlib.AsyncExitStack() as stack:
        if not uri and persistent:
            uri = running_serve()
            if uri and announce:
                typer.echo(f"Using the server of `eventlab serve` at {uri}")
        if not uri:
            if announce:
                typer.echo("Starting an embedded server (SecantusDB on 127.0.0.1)...")
            server = EmbeddedMongo(storage_path=DEFAULT_STORAGE if persistent else None)
            try:
                await stack.enter_async_context(server)
            except EventlabError as exc:
                hint = (
                    f" (is another process using {DEFAULT_STORAGE}? then pass its --uri)"
                    if persistent
                    else ""
                )
                raise EventlabError(f"{str(exc).splitlines()[0]}{hint}") from exc
            uri = server.uri
        conn = await stack.enter_async_context(MongoConnectionManager(uri, database=database))
        if announce:
            info = conn.info
            typer.echo(
                f"Connected to {conn.display_uri} ({info.kind}, server {info.server_version})"
            )
        yield conn


@app.command()
def tour(
    uri: UriOption = None,
    database: DatabaseOption = "eventlab_tour",
    reports: Annotated[Path, typer.Option(help="Where the plots go.")] = Path("reports"),
) -> None:
    """Walk through eventlab end to end on sample data (the README's main command)."""
    _run(lambda: _tour(uri, database, reports))


async def _tour(uri: str | None, database: str, reports: Path) -> None:
    from .samples import Order, chat_registry, order_registry
    from .samples.datasets import anomalies_dataset, chat_dataset, orders_dataset
    from .workbench import events_frame, find_gaps, read_frame, replay

    async with _connection(uri, database) as conn:
        await conn.client.drop_database(database)
        registry = chat_registry(order_registry())
        store = MongoEventStore(conn, registry=registry)
        migrated = await store.migrate()
        typer.echo(f"Migrations applied: {', '.join(migrated.applied) or 'none needed'}")
        typer.echo(
            f"Position strategy: {store.position_strategy} (how an event gets its place in the "
            "global order: taken inside the append's transaction, so positions are dense and "
            "visible in commit order; docs/positions.md)\n"
        )

        typer.secho("1. Loading the sample datasets (orders and chat & tasks)", bold=True)
        started = time.perf_counter()
        samples = orders_dataset() + chat_dataset()
        samples.sort(key=lambda e: e.recorded_at)  # type: ignore[arg-type,return-value]
        samples = [replace(e, position=i) for i, e in enumerate(samples, start=1)]
        restored = await store.restore(samples)
        typer.echo(f"   {restored:,} events restored in {time.perf_counter() - started:.1f}s\n")

        typer.secho("2. Stream statistics (events_frame → pandas)", bold=True)
        frame = await read_frame(store)
        per_type = frame.groupby(["aggregate_type", "event_type"], observed=True).size()
        for (kind, name), count in zip(per_type.index.tolist(), per_type.tolist(), strict=True):
            typer.echo(f"   {kind:<6} {name:<20} {count:>6,}")
        streams = frame.groupby("aggregate_id").size()
        typer.echo(
            f"   {len(frame):,} events in {len(streams):,} streams; "
            f"events per stream: median {streams.median():.0f}, max {streams.max()}\n"
        )

        typer.secho("3. Rebuilding one order step by step (replay)", bold=True)
        order_id = "order-00001"
        trace = replay(Order, await store.read_stream(order_id), registry=registry)
        for step in trace.steps:
            typer.echo(f"   v{step.version} {step.event_type:<15} {_changes(step.changes)}")
        final = trace.at_version(trace.steps[-1].version)
        typer.echo(
            f"   -> {final.status}, {_count(final.lines, 'line')}, "
            f"total {final.total} {final.currency}\n"
        )

        typer.secho("4. Optimistic concurrency: 16 writers, one expected version", bold=True)
        version = await store.get_current_version(order_id)
        winners, conflicts = await _race(store, order_id, version, writers=16)
        typer.echo(
            f"   {winners} writer stored its event, {conflicts} got ConcurrencyError; "
            f"stream is now at v{await store.get_current_version(order_id)}\n"
        )

        typer.secho("5. Gap report on the anomalies dataset", bold=True)
        anomalies, _ = anomalies_dataset()
        anomaly_frame = events_frame(anomalies)
        report = find_gaps(anomaly_frame)
        for name, count in report.summary().items():
            typer.echo(f"   {name:<26} {count:>5}")
        clean = find_gaps(frame)
        typer.echo(f"   (the store itself: {'no anomalies' if clean.clean else clean.summary()})\n")

        typer.secho("6. Projections: read models that follow the log", bold=True)
        from .samples import SAMPLE_PROJECTIONS

        for projection_class in SAMPLE_PROJECTIONS.values():
            projector = Projector(store, projection_class())
            before = await projector.status()
            started = time.perf_counter()
            await projector.run_until_caught_up()
            status = await projector.status()
            typer.echo(
                f"   {status.name:<13} {status.rows:>5,} rows, {before.behind:,} positions "
                f"caught up in {time.perf_counter() - started:.1f}s (lag now {status.behind})"
            )
        totals = await Projector(store, SAMPLE_PROJECTIONS["order_totals"]()).frame()
        revenue = totals[totals.status == "shipped"].groupby("currency").total.sum()
        typer.echo(
            "   shipped revenue: "
            + ", ".join(f"{amount:,.2f} {currency}" for currency, amount in revenue.items())
        )
        tasks = await Projector(store, SAMPLE_PROJECTIONS["open_tasks"]()).frame()
        open_tasks = tasks[tasks.open.astype(bool)]
        typer.echo(
            f"   open tasks: {len(open_tasks)}, over {open_tasks.assignee.nunique()} assignees\n"
        )

        typer.secho("7. Plots", bold=True)
        reports.mkdir(parents=True, exist_ok=True)
        written = [
            _save(report.plot(anomaly_frame), reports / "gaps.png"),
            _save(_timeline(frame), reports / "timeline.png"),
        ]
        for path in written:
            typer.echo(f"   wrote {path}")
        typer.echo("")

        typer.secho("Where to go next", bold=True)
        typer.echo("   notebooks/01_explore_streams.ipynb   the same, interactively")
        typer.echo(
            "   docs/positions.md                    why positions are taken in the transaction"
        )
        typer.echo("   eventlab serve / import / stats      a persistent store of your own")
        typer.echo("   eventlab projections / rebuild NAME  read models: status, lag, rebuild")
        typer.echo("   uv run pytest                        the test suite, on this same server")


async def _race(
    store: MongoEventStore, aggregate_id: str, version: int, writers: int
) -> tuple[int, int]:
    from .samples.orders import OrderCancelled

    async def attempt(i: int) -> bool:
        try:
            await store.append(
                aggregate_id, [OrderCancelled(reason=f"writer {i}")], expected_version=version
            )
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(writers)))
    return sum(results), len(results) - sum(results)


def _changes(changes: dict[str, tuple[Any, Any]]) -> str:
    from .workbench._display import show_value

    return ", ".join(
        f"{k}: {show_value(old)} → {show_value(new)}" for k, (old, new) in sorted(changes.items())
    )


def _check_plot_path(path: Path) -> None:
    """Refuse a plot path before any work is done: an image format, in a directory that is."""
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        usable = sorted(k for k in formats if k in _PLOT_FORMATS)
        raise EventlabError(
            f"cannot write a plot to {path}: {path.suffix or 'no extension'} is not an image "
            f"format; use one of .{', .'.join(usable)}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist (no plot written)")


def _save(figure: Any, path: Path) -> Path:
    _check_plot_path(path)
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def _timeline(frame: Any) -> Any:
    import matplotlib.pyplot as plt

    from .workbench._gaps import readable_dates

    fig, ax = plt.subplots(figsize=(11, 4))
    # Resampled per type: each line covers its own type's span (zero within it where an hour
    # had no event), and stops where its data stops instead of running on as zeros.
    hourly = (
        frame.set_index("recorded_at")
        .groupby("aggregate_type", observed=True)
        .resample("1h")
        .size()
        .unstack(0)
    )
    for name in hourly.columns:
        ax.plot(hourly.index, hourly[name], label=str(name), drawstyle="steps-post")
    readable_dates(ax.xaxis)
    ax.set_title("Events recorded per hour, by aggregate type")
    ax.set_xlabel("recorded at (UTC)")
    ax.set_ylabel("events per hour")
    ax.legend(title="aggregate type")
    fig.tight_layout()
    return fig


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
        _fail(f"--port must be a TCP port from 1 to 65535 (0: a free one), got {port}")
    server = EmbeddedMongo(
        storage_path=storage, port=port or None, enable_test_commands=test_commands
    )
    try:
        server.start()
    except EventlabError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
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
        async with _connection(uri, database, announce=False) as conn:
            store = MongoEventStore(conn, events_collection=events_collection, auto_migrate=False)
            result = await store.migrate(query_indexes=query_indexes)
            for migration_id in result.applied:
                typer.echo(f"applied  {migration_id}")
            for migration_id in result.already_applied:
                typer.echo(f"present  {migration_id}")

    _run(run)


PathArgument = Annotated[Path, typer.Argument(help="A JSON Lines file of events.")]


@app.command("import")
def import_events(
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    preserve_positions: Annotated[
        bool, typer.Option(help="Keep the file's positions (restore a backup into an empty store).")
    ] = False,
) -> None:
    """Import events from a JSON Lines file (the whole file is checked before writing)."""
    from .workbench import events_frame, find_gaps, load_jsonl

    async def run() -> None:
        events = load_jsonl(file)  # a malformed line stops here, before anything is written
        report = find_gaps(events_frame(events))
        if (
            len(report.duplicate_versions)
            or len(report.version_gaps)
            or len(report.duplicate_positions)
        ):
            raise EventlabError(
                f"{file}: refusing to import a file that breaks stream invariants "
                f"({report.summary()}); examine it with `eventlab gaps --file {file}`"
            )
        async with _connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn)
            if preserve_positions:
                stored = await store.count()
                if stored:
                    raise EventlabError(
                        f"the store already holds {stored:,} events: --preserve-positions "
                        "restores a backup into an empty store (or a new --database); without "
                        "it the file is appended, and events already stored are skipped"
                    )
                written = await store.restore(events, progress=None)
                typer.echo(f"restored {written:,} events from {file} (positions kept)")
                return
            written, skipped = await _append_in_order(store, events)
            typer.echo(
                f"imported {_count(written, 'new event')} from {file}, "
                f"skipped {_count(skipped, 'event')} already stored"
            )

    _run(run)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


async def _append_in_order(store: MongoEventStore, events: list[Any]) -> tuple[int, int]:
    """Append what is not stored yet (by event id), each stream at its own versions, a chunk
    per transaction; returns (written, skipped)."""
    from itertools import groupby

    from tqdm import tqdm

    from ._unit_of_work import run_unit_of_work

    ordered = sorted(events, key=lambda e: e.position or 0)
    written = skipped = 0
    with tqdm(total=len(ordered), unit="event", disable=None, desc="import") as bar:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            ids = [e.event_id for e in chunk]
            present = {
                doc["_id"] async for doc in store.events.find({"_id": {"$in": ids}}, {"_id": 1})
            }
            new = [
                replace(e, position=None, recorded_at=None)
                for e in chunk
                if e.event_id not in present
            ]
            runs = [list(run) for _, run in groupby(new, key=lambda e: e.aggregate_id)]

            async def write(uow: Any, runs: list[list[Any]] = runs) -> None:
                for run in runs:
                    await store.append(run[0].aggregate_id, run, run[0].version - 1, uow=uow)

            if runs:
                await run_unit_of_work(store.connection, write)
            written += len(new)
            skipped += len(chunk) - len(new)
            bar.update(len(chunk))
    return written, skipped


@app.command("export")
def export_events(
    file: PathArgument,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Export every event, in position order, to a JSON Lines file."""
    from tqdm import tqdm

    from .workbench import dump_jsonl

    async def run() -> None:
        if not file.parent.is_dir():
            raise FileNotFoundError(f"directory {file.parent} does not exist (nothing exported)")
        async with _connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn, events_collection=events_collection)
            total = await store.count()
            events = []
            with tqdm(total=total, unit="event", disable=None, desc="export") as bar:
                async for event in store.read_all(page_size=2000):
                    events.append(event)
                    bar.update(1)
            written = dump_jsonl(events, file)
            typer.echo(f"exported {written:,} events to {file}")

    _run(run)


@app.command()
def stats(
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: CollectionOption = "domain_events",
) -> None:
    """Events, streams and types in a store."""

    async def run() -> None:
        async with _connection(uri, database, announce=False, persistent=True) as conn:
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

    _run(run)


@app.command()
def gaps(
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
            _check_plot_path(plot)
        if file is not None:
            frame = events_frame(load_jsonl(file))
        else:
            async with _connection(uri, database, announce=False, persistent=True) as conn:
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
            _save(report.plot(frame), plot)
            typer.echo(f"\nwrote {plot}")

    _run(run)


@app.command()
def projections(uri: UriOption = None, database: DatabaseOption = "eventlab") -> None:
    """The sample projections' read models: generation, checkpoint, lag, rows."""

    async def run() -> None:
        from .samples import SAMPLE_PROJECTIONS

        async with _connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn)
            typer.echo(
                f"{'projection':<14} {'version':>7} {'gen':>4} {'position':>9} {'behind':>7} "
                f"{'seconds':>8} {'rows':>7}"
            )
            for projection_class in SAMPLE_PROJECTIONS.values():
                s = await Projector(store, projection_class()).status()
                stale = "  (stale: rebuild)" if s.stale else ""
                typer.echo(
                    f"{s.name:<14} {s.version:>7} {s.generation:>4} {s.position:>9,} "
                    f"{s.behind:>7,} {s.seconds_behind:>8.1f} {s.rows:>7,}{stale}"
                )

    _run(run)


@app.command()
def rebuild(
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
        async with _connection(uri, database, announce=False, persistent=True) as conn:
            store = MongoEventStore(conn)
            started = time.perf_counter()
            status = await Projector(store, SAMPLE_PROJECTIONS[name]()).rebuild()
            typer.echo(
                f"rebuilt {status.name}: generation {status.generation}, {status.rows:,} rows "
                f"at position {status.position:,} in {time.perf_counter() - started:.1f}s"
            )

    _run(run)


@app.command("replay")
def replay_command(
    aggregate_id: Annotated[str, typer.Argument(help="The stream to rebuild.")],
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
) -> None:
    """Rebuild one aggregate of the sample domains step by step."""
    from .samples import Chat, Order, chat_registry, order_registry
    from .workbench import replay

    classes = {"Order": Order, "Chat": Chat}

    async def run() -> None:
        async with _connection(uri, database, announce=False, persistent=True) as conn:
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
            typer.echo(f"v{step.version:<3} {step.event_type:<20} {_changes(step.changes)}{marker}")

    _run(run)


if __name__ == "__main__":  # pragma: no cover
    main()
