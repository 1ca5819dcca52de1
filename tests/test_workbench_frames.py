from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from eventlab import ConfigurationError, MongoEventStore, StoredEvent
from eventlab.samples import generate_orders, order_registry
from eventlab.workbench import (
    events_frame,
    read_frame,
)

from .conftest import make_event, stream_id


def sample_events() -> list[StoredEvent]:
    registry = order_registry()
    events: list[StoredEvent] = []
    position = 0
    for order in generate_orders(5):
        for version, event in enumerate(order.pending_events, start=1):
            position += 1
            stored = registry.to_stored(
                event,
                aggregate_id=order.id,
                aggregate_type="Order",
                version=version,
                metadata={"correlation_id": f"c-{order.id}"},
            )
            events.append(stored.with_position(position, stored.occurred_at))
    return events


def _event(payload: dict[str, object], position: int = 1) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="T",
        aggregate_id=f"s-{position}",
        aggregate_type="A",
        version=1,
        payload=payload,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        position=position,
    )


async def test_frame_from_store_and_documents(store: MongoEventStore) -> None:
    a, b = stream_id(), stream_id()
    await store.append(a, [make_event(a, 1, total=Decimal("1.5"), address={"city": "X"})], 0)
    await store.append(b, [make_event(b, 1, event_type="Other")], 0)
    frame = await read_frame(store)
    assert list(frame["aggregate_id"]) == [a, b]
    assert frame["payload.address.city"].iloc[0] == "X"
    only_a = await read_frame(store, streams=a, event_types=["Noted"], after=0)
    assert list(only_a["aggregate_id"]) == [a]
    others = await read_frame(store, event_types=["Other"])
    assert list(others["aggregate_id"]) == [b]
    docs = await store.events.find({}).to_list(None)
    assert list(events_frame(docs)["aggregate_id"]) == [a, b]


async def test_read_frame_is_awaited_and_events_frame_refuses_a_store(
    store: MongoEventStore,
) -> None:
    a = stream_id()
    await store.append(a, [make_event(a, 1)], 0)
    frame = await read_frame(store, progress=True)
    assert list(frame["aggregate_id"]) == [a]
    with pytest.raises(ConfigurationError, match="read_frame"):
        events_frame(store)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="read_frame"):
        events_frame(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="events_frame"):
        await read_frame([])  # type: ignore[arg-type]
