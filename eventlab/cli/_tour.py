"""``eventlab tour``: eventlab end to end on the sample data, one step after another."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._options import DatabaseOption, UriOption
from ._support import changes_line, connection, count_of, run_command, save_figure

if TYPE_CHECKING:
    from .._core.registry import EventRegistry
    from .._mongo.event_store import MongoEventStore


def tour_command(
    context: typer.Context,
    uri: UriOption = None,
    database: DatabaseOption = "eventlab_tour",
    reports: Annotated[Path, typer.Option(metavar="DIR", help="Where the plots go.")] = Path(
        "reports"
    ),
) -> None:
    """Walk through eventlab end to end on sample data.

    The README's main command: about 15 seconds on the embedded server; plots in --reports.
    """
    run_command(context, lambda: run_tour(uri, database, reports))


@dataclass
class _Tour:
    store: MongoEventStore
    registry: EventRegistry
    reports: Path
    frame: Any = None
    """Every stored event as a DataFrame, once step 2 has read it."""


async def run_tour(uri: str | None, database: str, reports: Path) -> None:
    from .._mongo.event_store import MongoEventStore
    from ..samples import chat_registry, order_registry

    async with connection(uri, database) as conn:
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
        tour = _Tour(store, registry, reports)
        for number, (title, step) in enumerate(_STEPS, start=1):
            typer.secho(f"{number}. {title}", bold=True)
            await step(tour)
            typer.echo("")
    _where_next()


async def _load_samples(tour: _Tour) -> None:
    from ..samples.datasets import chat_dataset, orders_dataset

    started = time.perf_counter()
    samples = orders_dataset() + chat_dataset()
    samples.sort(key=lambda e: e.recorded_at)  # type: ignore[arg-type,return-value]
    samples = [replace(e, position=i) for i, e in enumerate(samples, start=1)]
    restored = await tour.store.restore(samples)
    typer.echo(f"   {restored:,} events restored in {time.perf_counter() - started:.1f}s")


async def _statistics(tour: _Tour) -> None:
    from ..workbench import read_frame

    tour.frame = frame = await read_frame(tour.store)
    per_type = frame.groupby(["aggregate_type", "event_type"], observed=True).size()
    for (kind, name), count in zip(per_type.index.tolist(), per_type.tolist(), strict=True):
        typer.echo(f"   {kind:<6} {name:<20} {count:>6,}")
    streams = frame.groupby("aggregate_id").size()
    typer.echo(
        f"   {len(frame):,} events in {len(streams):,} streams; "
        f"events per stream: median {streams.median():.0f}, max {streams.max()}"
    )


_ORDER = "order-00001"


async def _replay_one_order(tour: _Tour) -> None:
    from ..samples import Order
    from ..workbench import replay

    trace = replay(Order, await tour.store.read_stream(_ORDER), registry=tour.registry)
    for step in trace.steps:
        typer.echo(f"   v{step.version} {step.event_type:<15} {changes_line(step.changes)}")
    final = trace.at_version(trace.steps[-1].version)
    typer.echo(
        f"   -> {final.status}, {count_of(final.lines, 'line')}, "
        f"total {final.total} {final.currency}"
    )


async def _race_of_writers(tour: _Tour, writers: int = 16) -> None:
    from .._core.errors import ConcurrencyError
    from ..samples.orders import OrderCancelled

    store = tour.store
    version = await store.get_current_version(_ORDER)

    async def attempt(i: int) -> bool:
        try:
            await store.append(_ORDER, [OrderCancelled(reason=f"writer {i}")], version)
            return True
        except ConcurrencyError:
            return False

    won = sum(await asyncio.gather(*(attempt(i) for i in range(writers))))
    typer.echo(
        f"   {won} writer stored its event, {writers - won} got ConcurrencyError; "
        f"stream is now at v{await store.get_current_version(_ORDER)}"
    )


async def _gap_report(tour: _Tour) -> None:
    from ..samples.datasets import anomalies_dataset
    from ..workbench import events_frame, find_gaps

    anomalies, _ = anomalies_dataset()
    report = find_gaps(events_frame(anomalies))
    for name, count in report.summary().items():
        typer.echo(f"   {name:<26} {count:>5}")
    clean = find_gaps(tour.frame)
    typer.echo(f"   (the store itself: {'no anomalies' if clean.clean else clean.summary()})")


async def _projections(tour: _Tour) -> None:
    from .._follow.projector import Projector
    from ..samples import SAMPLE_PROJECTIONS

    for projection_class in SAMPLE_PROJECTIONS.values():
        projector = Projector(tour.store, projection_class())
        before = await projector.status()
        started = time.perf_counter()
        await projector.run_until_caught_up()
        status = await projector.status()
        typer.echo(
            f"   {status.name:<13} {status.rows:>5,} rows, {before.behind:,} positions "
            f"caught up in {time.perf_counter() - started:.1f}s (lag now {status.behind})"
        )
    totals = await Projector(tour.store, SAMPLE_PROJECTIONS["order_totals"]()).frame()
    revenue = totals[totals.status == "shipped"].groupby("currency").total.sum()
    typer.echo(
        "   shipped revenue: "
        + ", ".join(f"{amount:,.2f} {currency}" for currency, amount in revenue.items())
    )
    tasks = await Projector(tour.store, SAMPLE_PROJECTIONS["open_tasks"]()).frame()
    open_tasks = tasks[tasks.open.astype(bool)]
    typer.echo(f"   open tasks: {len(open_tasks)}, over {open_tasks.assignee.nunique()} assignees")


async def _plots(tour: _Tour) -> None:
    from ..samples.datasets import anomalies_dataset
    from ..workbench import events_frame, find_gaps, plot_timeline

    anomaly_frame = events_frame(anomalies_dataset()[0])
    tour.reports.mkdir(parents=True, exist_ok=True)
    for path in (
        save_figure(find_gaps(anomaly_frame).plot(anomaly_frame), tour.reports / "gaps.png"),
        save_figure(plot_timeline(tour.frame), tour.reports / "timeline.png"),
    ):
        typer.echo(f"   wrote {path}")


def _where_next() -> None:
    typer.secho("Where to go next", bold=True)
    for command, what in (
        ("notebooks/01_explore_streams.ipynb", "the same, interactively"),
        ("docs/positions.md", "why positions are taken in the transaction"),
        ("eventlab serve / import / stats", "a persistent store of your own"),
        ("eventlab projections / rebuild NAME", "read models: status, lag, rebuild"),
        ("uv run pytest", "the test suite, on this same server"),
    ):
        typer.echo(f"   {command:<37}{what}")


_STEPS = (
    ("Loading the sample datasets (orders and chat & tasks)", _load_samples),
    ("Stream statistics (events_frame → pandas)", _statistics),
    ("Rebuilding one order step by step (replay)", _replay_one_order),
    ("Optimistic concurrency: 16 writers, one expected version", _race_of_writers),
    ("Gap report on the anomalies dataset", _gap_report),
    ("Projections: read models that follow the log", _projections),
    ("Plots, written as PNG files (--reports sets where)", _plots),
)
