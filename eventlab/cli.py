"""The ``eventlab`` command line: ``tour``, ``serve``, ``migrate``.

Every command takes ``--uri`` (default ``$EVENTLAB_MONGODB_URI``, else an embedded server).
Failures print one clear line and exit non-zero; no tracebacks for expected errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ._aggregate_store import AggregateStore
from ._connection import URI_ENV_VAR, MongoConnectionManager
from ._errors import ConcurrencyError, EventlabError
from ._event_store import MongoEventStore
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


def main() -> None:
    """Console entry point."""
    app()


def _run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    except EventlabError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


@contextlib.asynccontextmanager
async def _connection(
    uri: str | None, database: str, *, announce: bool = True
) -> AsyncIterator[MongoConnectionManager]:
    """Connect to ``uri``, or start a temporary embedded server for the duration."""
    async with contextlib.AsyncExitStack() as stack:
        if not uri:
            if announce:
                typer.echo("Starting an embedded server (SecantusDB on 127.0.0.1)...")
            server = await stack.enter_async_context(EmbeddedMongo())
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
    orders: Annotated[int, typer.Option(min=1, max=100_000, help="Sample orders to write.")] = 200,
) -> None:
    """Walk through eventlab end to end on sample data (the README's main command)."""
    _run(lambda: _tour(uri, database, orders))


async def _tour(uri: str | None, database: str, order_count: int) -> None:
    from .samples import Order, generate_orders, order_registry

    async with _connection(uri, database) as conn:
        await conn.client.drop_database(database)
        store = MongoEventStore(conn, registry=order_registry())
        migrated = await store.migrate()
        typer.echo(f"Migrations applied: {', '.join(migrated.applied) or 'none needed'}")
        typer.echo(f"Position strategy: {store.position_strategy}\n")

        typer.secho("1. Writing sample orders", bold=True)
        aggregates = AggregateStore(store)
        started = time.perf_counter()
        samples = list(generate_orders(order_count))
        for order in samples:
            await aggregates.save(order, metadata={"correlation_id": f"tour-{order.id}"})
        elapsed = time.perf_counter() - started
        total = await store.count()
        typer.echo(
            f"   {total} events in {order_count} streams, {elapsed:.2f}s "
            f"({total / elapsed:,.0f} events/s, one transaction per order)\n"
        )

        typer.secho("2. Stream statistics", bold=True)
        everything = await store.get_all_events()
        per_type = Counter(e.event_type for e in everything)
        for name, count in per_type.most_common():
            typer.echo(f"   {name:<16} {count:>6}")
        positions = [e.position for e in everything]
        typer.echo(
            f"   positions {positions[0]}..{positions[-1]}, "
            f"gaps: {positions[-1] - positions[0] + 1 - len(positions)}\n"
        )

        typer.secho("3. Rebuilding one order step by step", bold=True)
        order_id = samples[0].id
        stored = await store.get_events(order_id)
        order = Order(order_id)
        for event in stored:
            order.apply(store.registry.to_domain(event, unknown="raise"))
            typer.echo(
                f"   v{event.version} {event.event_type:<15} -> status={order.status:<9} "
                f"lines={order.lines} total={order.total} {order.currency}"
            )
        typer.echo("")

        typer.secho("4. Optimistic concurrency: 16 writers, one expected version", bold=True)
        version = await store.get_current_version(order_id)
        winners, conflicts = await _race(store, order_id, version, writers=16)
        typer.echo(
            f"   {winners} writer stored its event, {conflicts} got ConcurrencyError; "
            f"stream is now at v{await store.get_current_version(order_id)}\n"
        )

        typer.secho("Where to go next", bold=True)
        typer.echo("   README.md             quick start and architecture")
        typer.echo("   docs/positions.md     why positions are taken inside the transaction")
        typer.echo("   notebooks/            explore streams in Jupyter")
        typer.echo("   uv run pytest         the test suite, against this same embedded server")


async def _race(store: MongoEventStore, aggregate_id: str, version: int, writers: int) -> tuple[int, int]:
    from .samples.orders import OrderCancelled

    async def attempt(i: int) -> bool:
        try:
            await store.save_events(
                aggregate_id, [OrderCancelled(reason=f"writer {i}")], expected_version=version
            )
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(writers)))
    return sum(results), len(results) - sum(results)


@app.command()
def serve(
    storage: Annotated[
        Path, typer.Option(help="Where the data lives (kept across restarts).")
    ] = Path(".eventlab/data"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 27017,
    test_commands: Annotated[
        bool, typer.Option(help="Enable fail points (configureFailPoint).")
    ] = False,
) -> None:
    """Run the embedded server in the foreground until Ctrl-C."""
    server = EmbeddedMongo(
        storage_path=storage, port=port or None, enable_test_commands=test_commands
    )
    try:
        server.start()
    except EventlabError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"eventlab embedded server on {server.uri}")
    typer.echo(f"data in {storage.resolve()} (durable commits); Ctrl-C to stop")
    typer.echo(f"use it with: export {URI_ENV_VAR}='{server.uri}'")
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
    typer.echo("stopped")


@app.command()
def migrate(
    uri: UriOption = None,
    database: DatabaseOption = "eventlab",
    events_collection: Annotated[str, typer.Option(help="Events collection.")] = "domain_events",
) -> None:
    """Apply the event store's index migrations (idempotent)."""

    async def run() -> None:
        async with _connection(uri, database, announce=False) as conn:
            store = MongoEventStore(conn, events_collection=events_collection, auto_migrate=False)
            result = await store.migrate()
            for migration_id in result.applied:
                typer.echo(f"applied  {migration_id}")
            for migration_id in result.already_applied:
                typer.echo(f"present  {migration_id}")

    _run(run)


if __name__ == "__main__":  # pragma: no cover
    main()
