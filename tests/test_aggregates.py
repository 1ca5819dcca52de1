from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from eventlab import (
    AggregateNotFoundError,
    AggregateStore,
    ConcurrencyError,
    InvalidEventError,
    MongoEventStore,
)

from .conftest import stream_id
from .domain import Currency, LineAdded, Order, OrderPlaced, OrderShipped


def place(order: Order) -> None:
    order.record(
        OrderPlaced(customer_id=uuid.uuid4(), currency=Currency.EUR, placed_at=datetime.now(UTC))
    )


async def test_save_load_and_stale_save(store: MongoEventStore) -> None:
    aggregates = AggregateStore(store)
    order = Order(stream_id())
    place(order)
    order.record(LineAdded(sku="A", quantity=2, price=Decimal("5.25")))
    assert order.version == 2 and len(order.pending_events) == 2
    stored = await aggregates.save(order, metadata={"correlation_id": "req-1"})
    assert [e.version for e in stored] == [1, 2] and not order.pending_events
    assert await aggregates.save(order) == []

    first = await aggregates.load(Order, order.id)
    second = await aggregates.load(Order, order.id)
    assert first.total == Decimal("10.50") and first.version == 2 and first.lines == ["A"]
    first.record(OrderShipped(carrier="DHL"))
    await aggregates.save(first)
    second.record(LineAdded(sku="B", quantity=1, price=Decimal("1")))
    with pytest.raises(ConcurrencyError) as info:
        await aggregates.save(second)
    assert info.value.expected_version == 2 and info.value.actual_version == 3
    assert len(second.pending_events) == 1, "pending events are kept when a save fails"
    reloaded = await aggregates.load(Order, order.id)
    assert reloaded.status == "shipped" and reloaded.version == 3


async def test_load_missing_aggregate(store: MongoEventStore) -> None:
    with pytest.raises(AggregateNotFoundError):
        await AggregateStore(store).load(Order, "nope")


def test_unhandled_event_and_state() -> None:
    order = Order("o-1")
    with pytest.raises(InvalidEventError, match="no handler"):
        order.apply(object())  # type: ignore[arg-type]
    place(order)
    assert order.state()["status"] == "placed"
    assert "version=1" in repr(order)
    assert order.pull_domain_events() and order.pull_domain_events() == []
    rebuilt = Order.rebuild("o-2", [LineAdded(sku="x", quantity=1, price=Decimal(2))])
    assert rebuilt.total == Decimal(2) and rebuilt.version == 1 and not rebuilt.pending_events


async def test_a_unit_of_work_rerun_by_the_server_stores_the_events_once(
    store: MongoEventStore,
) -> None:
    from eventlab import run_unit_of_work

    aggregates = AggregateStore(store)
    order = Order(stream_id())
    place(order)
    receipts = store.connection.database["receipts"]
    await receipts.insert_one({"_id": "warm"})
    attempts = 0

    async def place_and_record(uow: Any) -> None:
        nonlocal attempts
        attempts += 1
        await aggregates.save(order, uow=uow)
        if attempts == 1:  # the unit's next write meets a write conflict: the runner reruns it
            await store.connection.client.admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": {
                        "failCommands": ["insert"],
                        "errorCode": 112,
                        "errorLabels": ["TransientTransactionError"],
                    },
                }
            )
        await receipts.insert_one({"_id": order.id}, session=uow.session)

    await run_unit_of_work(store.connection, place_and_record)
    assert attempts == 2 and not order.pending_events
    assert [e.version for e in await store.read_stream(order.id)] == [1]
    assert await receipts.count_documents({"_id": order.id}) == 1


async def test_pending_events_follow_a_unit_of_work_managed_by_hand(
    store: MongoEventStore,
) -> None:
    from eventlab import ConfigurationError, MongoUnitOfWork, UnitOfWorkStateError

    aggregates = AggregateStore(store)
    order = Order(stream_id())
    place(order)
    async with MongoUnitOfWork(store.connection) as uow:
        await aggregates.save(order, uow=uow)
        with pytest.raises(ConfigurationError, match="callable"):
            uow.after_commit(42)  # type: ignore[arg-type]
    # left without commit: rolled back, the events still to save
    assert len(order.pending_events) == 1 and await store.read_stream(order.id) == []
    async with MongoUnitOfWork(store.connection) as uow:
        await aggregates.save(order, uow=uow)
        await uow.commit()
    assert not order.pending_events
    assert [e.version for e in await store.read_stream(order.id)] == [1]
    with pytest.raises(UnitOfWorkStateError):
        uow.after_commit(lambda: None)  # a finished unit takes no more hooks
