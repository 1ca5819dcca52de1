from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

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
