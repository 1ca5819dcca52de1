"""Projections and snapshots: read models that equal a clean rebuild after kills, rebuilds that
readers never see half-done, snapshot loads that equal full replays."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlab import (
    AggregateStore,
    ConfigurationError,
    EventlabError,
    MongoConnectionManager,
    MongoEventStore,
    MongoSnapshotStore,
    Projection,
    Projector,
    Rows,
    Snapshot,
    StoredEvent,
    on,
)
from eventlab.samples import (
    Chat,
    OpenTasks,
    Order,
    OrderTotals,
    chat_registry,
    generate_orders,
    order_registry,
)
from eventlab.testing import eventually
from eventlab.workbench import diff_projections, events_frame, load_jsonl, replay_projection

DATA = Path(__file__).parent.parent / "data"
CHILD = Path(__file__).with_name("_projector_child.py")
ORDERS = load_jsonl(DATA / "orders.jsonl")
CHATS = load_jsonl(DATA / "chat.jsonl")


def fresh_orders(count: int, seed: int, prefix: str) -> list[Order]:
    """Generated orders under ids the sample dataset does not use."""
    orders = list(generate_orders(count, seed=seed))
    for order in orders:
        order.id = f"{prefix}-{order.id}"
    return orders


def rows_of(projector_rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["_id"]: {k: v for k, v in r.items() if k != "_id"} for r in projector_rows}


async def orders_store(
    connection: MongoConnectionManager, count: int | None = None
) -> MongoEventStore:
    store = MongoEventStore(connection, registry=order_registry())
    await store.restore(ORDERS[:count] if count else ORDERS)
    return store


@pytest.mark.parametrize(
    ("projection", "events", "registry"),
    [(OrderTotals(), ORDERS, order_registry), (OpenTasks(), CHATS, chat_registry)],
    ids=["order_totals", "open_tasks"],
)
async def test_projector_writes_what_the_memory_replay_shows(
    connection: MongoConnectionManager, projection: Projection, events: Any, registry: Any
) -> None:
    store = MongoEventStore(connection, registry=registry())
    await store.restore(events)
    projector = Projector(store, projection)
    await projector.run_until_caught_up()
    assert rows_of(await projector.rows()) == replay_projection(projection, events).rows.rows
    status = await projector.status()
    assert (status.behind, status.seconds_behind, status.stale) == (0, 0.0, False)
    assert status.rows == len(replay_projection(projection, events).rows.rows) > 0


async def test_lag_moves_with_appends_and_the_projector(connection: MongoConnectionManager) -> None:
    store = await orders_store(connection, 400)
    projector = Projector(store, OrderTotals())
    before = await projector.status()
    assert before.behind == 400 and before.seconds_behind >= 0 and before.rows == 0
    await projector.run_until_caught_up()
    assert (await projector.status()).behind == 0
    for order in fresh_orders(3, 99, "lag"):
        await AggregateStore(store).save(order)

    async def lag_in_seconds() -> bool:
        return (await projector.status()).seconds_behind > 0

    await eventually(lag_in_seconds, "the lag growing in seconds while nothing applies it")
    assert (await projector.status()).behind > 0
    projector.start()

    async def caught_up() -> bool:
        return (await projector.status()).behind == 0

    await eventually(caught_up, "the started projector catching up")
    await projector.stop()
    assert (await projector.status()).behind == 0


@pytest.mark.slow
async def test_a_projector_killed_twenty_times_equals_a_clean_rebuild(
    connection: MongoConnectionManager, mongo_uri: str, database_name: str
) -> None:
    store = await orders_store(connection, 1200)
    rng = random.Random(14)
    extra = iter(fresh_orders(40, 5, "extra"))
    aggregates = AggregateStore(store)
    for round_number in range(20):
        if round_number % 10 == 9:  # the process killed with SIGKILL at a random moment
            child = subprocess.Popen(
                [sys.executable, str(CHILD), mongo_uri, database_name],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
            )
            await asyncio.sleep(rng.uniform(1.0, 2.0))
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        else:
            projector = Projector(store, OrderTotals(), batch_size=rng.choice([5, 50]))
            task = projector.start()
            await asyncio.sleep(rng.uniform(0.02, 0.4))
            task.cancel()
            await asyncio.wait({task})
        await aggregates.save(next(extra))  # the log grows between interruptions
    survivor = Projector(store, OrderTotals())
    await survivor.run_until_caught_up()
    interrupted = rows_of(await survivor.rows())
    clean = replay_projection(OrderTotals(), await store.read_all().to_list()).rows.rows
    assert interrupted == clean
    await survivor.rebuild()
    assert rows_of(await survivor.rows()) == clean


@pytest.mark.slow
async def test_a_rebuild_while_writers_append_is_never_seen_empty_or_half_built(
    connection: MongoConnectionManager,
) -> None:
    store = await orders_store(connection, 1200)
    projector = Projector(store, OrderTotals())
    await projector.run_until_caught_up()
    whole = len(await projector.rows())
    live = projector.start()
    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            collection = await projector.collection()  # resolved per read, as documented
            seen.append(await collection.count_documents({}))
            await asyncio.sleep(0.005)

    async def writer() -> None:
        aggregates = AggregateStore(store)
        for order in fresh_orders(30, 1234, "late"):
            await aggregates.save(order)
            await asyncio.sleep(0.01)

    reading = asyncio.create_task(reader())
    writing = asyncio.create_task(writer())
    status = await projector.rebuild()
    await writing

    async def caught_up() -> bool:
        return (await projector.status()).behind == 0

    await eventually(caught_up, "the live projector following the rebuilt read model")
    done.set()
    await reading
    await projector.stop()
    assert live.done()
    assert status.generation == 2
    assert min(seen) >= whole, "a reader saw the read model empty or half-built"
    assert seen == sorted(seen), "a reader saw rows disappear"
    clean = replay_projection(OrderTotals(), await store.read_all().to_list()).rows.rows
    assert rows_of(await projector.rows()) == clean and len(clean) == whole + 30
    names = await connection.database.list_collection_names()
    assert "rm_order_totals_1" in names, "the replaced generation stays readable for a while"
    again = await Projector(store, OrderTotals(), keep_retired=0).rebuild()
    names = await connection.database.list_collection_names()
    assert again.generation == 3 and "rm_order_totals_1" not in names
    assert {"rm_order_totals_2", "rm_order_totals_3"} <= set(names)


class OrderTotalsWithTax(OrderTotals):
    """Version 2 of a projection: totals with 20 % tax on EUR orders."""

    name = "order_totals"
    version = 2

    @on("LineAdded")
    async def line_added(self, rows: Rows, event: StoredEvent) -> None:
        await super().line_added(rows, event)
        row = await rows.get(event.aggregate_id)
        assert row is not None
        if row["currency"] == "EUR":
            price = Decimal(str(event.payload["unit_price"])) * event.payload["quantity"]
            row["total"] += price * Decimal("0.2")
        rows.put(event.aggregate_id, row)


def test_replay_and_diff_of_two_versions() -> None:
    trace = replay_projection(OrderTotals(), ORDERS[:40])
    assert trace.frame.iloc[0].change == "insert" and "city: ∅ →" in trace.frame.iloc[0].changed
    assert len(trace.at(1)) == 1 and len(trace.read_model) == len(trace.rows.rows)
    assert "ProjectionTrace order_totals v1" in repr(trace)
    assert diff_projections(OrderTotals(), OrderTotals(), ORDERS).empty
    diff = diff_projections(OrderTotals(), OrderTotalsWithTax(), ORDERS)
    eur = {k for k, r in replay_projection(OrderTotals(), ORDERS).rows.rows.items()
           if r["currency"] == "EUR" and r["lines"]}  # fmt: skip
    assert set(diff.key) == eur and set(diff.field) == {"total"}
    assert all(after > before for before, after in zip(diff.before, diff.after, strict=True))
    # Over a DataFrame of events, as a notebook holds them: the same read model.
    frame = events_frame(ORDERS)
    assert replay_projection(OrderTotals(), frame).rows.rows == (
        replay_projection(OrderTotals(), ORDERS).rows.rows
    )
    assert diff_projections(OrderTotals(), OrderTotals(), frame).empty
    with pytest.raises(ConfigurationError, match="events_frame"):
        replay_projection(OrderTotals(), frame[["position"]])


class Sleepy(Projection):
    @on("OrderPlaced")
    async def placed(self, rows: Rows, event: StoredEvent) -> None:
        await asyncio.sleep(0)


def test_in_memory_handlers_may_only_await_rows() -> None:
    with pytest.raises(ConfigurationError, match="only await"):
        replay_projection(Sleepy(), ORDERS[:1])
    with pytest.raises(ConfigurationError):
        replay_projection(object(), ORDERS[:1])  # type: ignore[arg-type]


async def test_a_stale_projector_version_shows_in_status(
    connection: MongoConnectionManager,
) -> None:
    store = await orders_store(connection, 50)
    await Projector(store, OrderTotals()).run_until_caught_up()
    newer = Projector(store, OrderTotalsWithTax())
    assert (await newer.status()).stale
    await newer.rebuild()
    status = await newer.status()
    assert not status.stale and status.version == 2


# -- snapshots -----------------------------------------------------------------------------


class SnappedOrder(Order):
    aggregate_type = "Order"
    snapshot_every = 3


class SnappedChat(Chat):
    aggregate_type = "Chat"
    snapshot_every = 4


def streams(events: list[StoredEvent]) -> dict[str, list[StoredEvent]]:
    by_stream: dict[str, list[StoredEvent]] = {}
    for event in events:
        by_stream.setdefault(event.aggregate_id, []).append(event)
    return by_stream


@pytest.mark.parametrize(
    ("cls", "events", "registry"),
    [(SnappedOrder, ORDERS, order_registry), (SnappedChat, CHATS, chat_registry)],
    ids=["orders", "chats"],
)
async def test_snapshot_loads_equal_full_replays_for_every_sample_aggregate(
    connection: MongoConnectionManager, cls: Any, events: list[StoredEvent], registry: Any
) -> None:
    store = MongoEventStore(connection, registry=registry())
    await store.restore(events)
    snapshots = MongoSnapshotStore(connection)
    plain = AggregateStore(store)
    snapped = AggregateStore(store, snapshots=snapshots)
    rng = random.Random(3)
    checked = 0
    for aggregate_id, stream in streams(events).items():
        full = await plain.load(cls, aggregate_id)
        at = rng.randint(1, len(stream))  # a snapshot at a random version of the stream
        partial = cls.rebuild(
            aggregate_id, [store.registry.to_domain(e, unknown="raise") for e in stream[:at]]
        )
        assert await snapped.snapshot(partial)
        loaded = await snapped.load(cls, aggregate_id)
        assert loaded.state() == full.state(), aggregate_id
        checked += 1
    assert checked == len(streams(events))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order_number=st.integers(0, 799), data=st.data())
async def test_snapshot_load_equals_replay_property(
    order_number: int, data: Any, mongo_uri: str
) -> None:
    async with MongoConnectionManager(mongo_uri, database="snapshot_property") as connection:
        store = MongoEventStore(connection, registry=order_registry())
        if await store.count() == 0:
            await store.restore(ORDERS)
        aggregate_id = f"order-{order_number + 1:05d}"
        stream = streams(ORDERS)[aggregate_id]
        at = data.draw(st.integers(1, len(stream)))
        snapshots = MongoSnapshotStore(connection, collection=f"snapshots_{order_number}_{at}")
        partial = SnappedOrder.rebuild(
            aggregate_id, [store.registry.to_domain(e, unknown="raise") for e in stream[:at]]
        )
        await snapshots.save(Snapshot(aggregate_id, "Order", at, 1, partial.snapshot_state()))
        loaded = await AggregateStore(store, snapshots=snapshots).load(SnappedOrder, aggregate_id)
        full = await AggregateStore(store).load(SnappedOrder, aggregate_id)
        assert loaded.state() == full.state()
        await snapshots.collection.drop()


async def test_saves_take_snapshots_and_untrusted_ones_are_ignored(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, registry=order_registry())
    snapshots = MongoSnapshotStore(connection)
    aggregates = AggregateStore(store, snapshots=snapshots)
    order = SnappedOrder("o-1")
    source = next(generate_orders(1))
    order.record(source.pending_events[0])  # OrderPlaced
    for n in range(4):
        order.add_line(f"sku-{n}", n + 1, Decimal("2.50"))
    await aggregates.save(order)  # versions 1..5 cross 3: a snapshot at 5
    snapshot = await snapshots.get("o-1")
    assert snapshot is not None and snapshot.version == 5 and snapshot.schema_version == 1
    assert snapshot.state["total"] == order.total

    # A snapshot of another schema is not trusted: the load replays every event instead.
    await snapshots.collection.update_one(
        {"_id": "o-1"}, {"$set": {"schema_version": 0, "state.total": "garbage"}}
    )
    assert (await aggregates.load(SnappedOrder, "o-1")).total == order.total
    # Nor one of another aggregate type, nor one past the end of the stream.
    await snapshots.collection.update_one(
        {"_id": "o-1"}, {"$set": {"schema_version": 1, "aggregate_type": "Chat"}}
    )
    assert (await aggregates.load(SnappedOrder, "o-1")).total == order.total
    await snapshots.collection.update_one(
        {"_id": "o-1"}, {"$set": {"aggregate_type": "Order", "version": 99}}
    )
    assert (await aggregates.load(SnappedOrder, "o-1")).version == 5
    # An older snapshot never replaces a newer one.
    assert not await snapshots.save(Snapshot("o-1", "Order", 2, 1, {}))
    unsaved = SnappedOrder("o-2")
    unsaved.record(source.pending_events[0])
    with pytest.raises(EventlabError, match="pending"):
        await aggregates.snapshot(unsaved)
    with pytest.raises(EventlabError, match="no snapshot store"):
        await AggregateStore(store).snapshot(order)
    assert await snapshots.delete("o-1")
