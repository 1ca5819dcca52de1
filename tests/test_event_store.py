"""Event store behaviour under both position strategies (the store fixture is parametrized)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from eventlab import (
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventError,
    ExpectedVersion,
    InvalidEventError,
    InvalidIdError,
    InvalidNameError,
    MongoEventStore,
    MongoUnitOfWork,
    SerializationError,
    StoredEvent,
)

from .conftest import make_event, put_one, stream_id
from .domain import Currency, LineAdded, OrderPlaced


async def test_append_and_read_stream_round_trip(store: MongoEventStore) -> None:
    sid = stream_id()
    events = [make_event(sid, v, amount=Decimal("10.05"), tags=["a", "b"]) for v in (1, 2, 3)]
    stored = await store.append(sid, events, expected_version=0)
    assert [e.version for e in stored] == [1, 2, 3]
    assert all(e.position is not None for e in stored)
    assert [e.position for e in stored] == sorted(e.position for e in stored)
    loaded = await store.read_stream(sid)
    assert [e.event_id for e in loaded] == [e.event_id for e in events]
    assert loaded[0].payload == {"amount": Decimal("10.05"), "tags": ["a", "b"]}
    assert loaded[0].metadata == {"correlation_id": "c-1"}
    assert loaded[0].occurred_at.tzinfo is not None
    assert loaded[0].recorded_at is not None
    assert loaded == stored or [e.position for e in loaded] == [e.position for e in stored]
    assert await store.get_current_version(sid) == 3


async def test_read_stream_version_window(store: MongoEventStore) -> None:
    sid = stream_id()
    await store.append(sid, [make_event(sid, v) for v in range(1, 6)], 0)
    assert [e.version for e in await store.read_stream(sid, after_version=2)] == [3, 4, 5]
    middle = await store.read_stream(sid, after_version=1, to_version=3)
    assert [e.version for e in middle] == [2, 3]
    assert await store.read_stream(stream_id()) == []
    assert await store.get_current_version(stream_id()) == 0


async def test_expected_version_mismatch_raises_and_writes_nothing(store: MongoEventStore) -> None:
    sid = stream_id()
    await store.append(sid, [make_event(sid, 1), make_event(sid, 2)], 0)
    with pytest.raises(ConcurrencyError) as info:
        await store.append(sid, [make_event(sid, 1)], expected_version=1)
    assert info.value.aggregate_id == sid
    assert info.value.expected_version == 1
    assert info.value.actual_version == 2
    # ahead of the stream: must not create a version gap
    with pytest.raises(ConcurrencyError) as ahead:
        await store.append(sid, [make_event(sid, 1)], expected_version=5)
    assert ahead.value.actual_version == 2
    assert [e.version for e in await store.read_stream(sid)] == [1, 2]


async def test_symbolic_expectations(store: MongoEventStore) -> None:
    sid = stream_id()
    with pytest.raises(ConcurrencyError):
        await store.append(sid, [make_event(sid, 1)], ExpectedVersion.STREAM_EXISTS)
    await store.append(sid, [make_event(sid, 1)], ExpectedVersion.NO_STREAM)
    with pytest.raises(ConcurrencyError):
        await store.append(sid, [make_event(sid, 1)], ExpectedVersion.NO_STREAM)
    stored = await store.append(sid, [make_event(sid, 1)], ExpectedVersion.ANY)
    assert stored[0].version == 2
    stored = await store.append(sid, [make_event(sid, 1)], ExpectedVersion.STREAM_EXISTS)
    assert stored[0].version == 3


async def test_appends_to_several_streams_in_a_unit_of_work_are_atomic(
    store: MongoEventStore,
) -> None:
    a, b = stream_id(), stream_id()
    async with MongoUnitOfWork(store.connection) as uow:
        await store.append(a, [make_event(a, 1), make_event(a, 2)], 0, uow=uow)
        await store.append(b, [make_event(b, 1)], 0, uow=uow)
        await uow.commit()
    assert await store.get_current_version(a) == 2 and await store.get_current_version(b) == 1
    # b is at 1: the unit of work fails there, and a's events of it are not stored either.
    with pytest.raises(ConcurrencyError):
        async with MongoUnitOfWork(store.connection) as uow:
            await store.append(a, [make_event(a, 3)], 2, uow=uow)
            await store.append(b, [make_event(b, 1)], 0, uow=uow)
            await uow.commit()
    assert await store.get_current_version(a) == 2


async def test_versions_follow_the_expectation_and_events_stay_in_their_stream(
    store: MongoEventStore,
) -> None:
    sid = stream_id()
    stored = await store.append(sid, [make_event(sid, 7), make_event(sid, 9)], 0)
    assert [e.version for e in stored] == [1, 2], "the store numbers from the expectation"
    with pytest.raises(InvalidEventError, match="belongs to"):
        await store.append(sid, [make_event(stream_id(), 1)], 2)
    with pytest.raises(ConcurrencyError):
        await store.append(sid, [make_event(sid, 4)], 3)  # version 3 missing: a gap
    assert [e.version for e in await store.read_stream(sid)] == [1, 2]


async def test_idempotent_retry_returns_stored_events_and_writes_nothing(
    store: MongoEventStore,
) -> None:
    sid = stream_id()
    batch = [make_event(sid, v) for v in (1, 2, 3)]
    first = await store.append(sid, batch, 0)
    count_before = await store.count()
    again = await store.append(sid, batch, 0)
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert [e.position for e in again] == [e.position for e in first]
    assert await store.count() == count_before
    single = await put_one(store, replace(batch[0], version=1))
    assert single.position == first[0].position
    assert await store.count() == count_before


async def test_same_event_id_with_other_content_is_an_error(store: MongoEventStore) -> None:
    sid = stream_id()
    event = make_event(sid, 1)
    await store.append(sid, [event], 0)
    forged = replace(event, payload={"n": 999})
    with pytest.raises(DuplicateEventError) as info:
        await store.append(sid, [forged], 0)
    assert event.event_id in info.value.event_ids
    other = stream_id()
    with pytest.raises(DuplicateEventError):
        await put_one(store, replace(event, aggregate_id=other))
    assert (await store.read_stream(sid))[0].payload == {"n": 1}
    assert await store.read_stream(other) == []


async def test_batch_repeating_an_event_id_is_rejected(store: MongoEventStore) -> None:
    sid = stream_id()
    event = make_event(sid, 1)
    with pytest.raises(InvalidEventError, match="repeats"):
        await store.append(sid, [event, event], 0)


async def test_typed_events_round_trip_exactly(store: MongoEventStore) -> None:
    sid = stream_id()
    customer = uuid.uuid4()
    placed_at = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
    events = [
        OrderPlaced(customer_id=customer, currency=Currency.EUR, placed_at=placed_at),
        LineAdded(sku="SKU-1", quantity=3, price=Decimal("19.99")),
    ]
    stored = await store.append(sid, events, 0, metadata={"user_id": "u-1"})
    assert stored[0].event_type == "OrderPlaced"
    assert stored[0].aggregate_type == "Order"
    assert stored[0].metadata["user_id"] == "u-1"
    loaded = await store.read_domain_events(sid)
    assert loaded == events or [e.model_dump() for e in loaded] == [
        {**e.model_dump(), "metadata": {"user_id": "u-1"}} for e in events
    ]
    placed = loaded[0]
    assert isinstance(placed, OrderPlaced)
    assert placed.customer_id == customer and isinstance(placed.customer_id, uuid.UUID)
    assert placed.currency is Currency.EUR
    assert placed.placed_at == placed_at
    line = loaded[1]
    assert isinstance(line, LineAdded)
    assert line.price == Decimal("19.99") and isinstance(line.price, Decimal)


async def test_global_reads_in_position_order(store: MongoEventStore) -> None:
    a, b = stream_id(), stream_id()
    await store.append(a, [make_event(a, 1), make_event(a, 2)], 0)
    await store.append(b, [make_event(b, 1, event_type="Other")], 0)
    await store.append(a, [make_event(a, 3)], 2)
    everything = await store.read_all().to_list()
    positions = [e.position for e in everything]
    assert positions == sorted(positions) and len(everything) == 4
    after = await store.read_all(positions[1], max_count=10).to_list()
    assert [e.position for e in after] == positions[2:]
    assert len(await store.read_all(0, max_count=2).to_list()) == 2
    others = await store.read_all(0, event_types=["Other"]).to_list()
    assert [e.aggregate_id for e in others] == [b]
    streamed = [e async for e in store.read_all(0, page_size=3)]
    assert [e.position for e in streamed] == positions
    resumed = [e async for e in store.read_all(positions[0], page_size=1)]
    assert [e.position for e in resumed] == positions[1:]
    assert await store.stream_ids() == sorted([a, b])
    assert await store.stream_ids("Note") == sorted([a, b])


async def test_bad_input_is_rejected_with_typed_errors(store: MongoEventStore) -> None:
    sid = stream_id()
    await store.append(sid, [make_event(sid, 1)], 0)
    with pytest.raises(SerializationError, match=r"payload\.when"):
        await put_one(store, make_event(sid, 2, when=object()))
    with pytest.raises(SerializationError, match="naive datetime"):
        await put_one(store, make_event(sid, 2, when=datetime(2026, 1, 1)))
    with pytest.raises(SerializationError, match="starts with"):
        await put_one(store, make_event(sid, 2, **{"$where": "1"}))
    with pytest.raises(InvalidEventError, match="naive"):
        StoredEvent(
            event_id=uuid.uuid4(),
            event_type="X",
            aggregate_id=sid,
            aggregate_type="Note",
            version=2,
            payload={},
            occurred_at=datetime(2026, 1, 1),
        )
    with pytest.raises(InvalidEventError, match="version"):
        make_event(sid, 0)
    with pytest.raises(ConfigurationError):
        await store.append(sid, [make_event(sid, 2)], expected_version=-1)
    with pytest.raises(ConfigurationError):
        store.read_all(-5)
    with pytest.raises(InvalidIdError):
        await store.append("", [make_event(sid, 2)], 1)
    assert [e.version for e in await store.read_stream(sid)] == [1]


def test_invalid_collection_names_are_rejected(connection) -> None:  # type: ignore[no-untyped-def]
    for bad in ["", "a$b", "system.events", "bad\x00name", ".lead", 42]:
        with pytest.raises(InvalidNameError):
            MongoEventStore(connection, events_collection=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MongoEventStore(connection, positions="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MongoEventStore(connection, events_collection="x", counters_collection="x")


async def test_occurred_at_is_normalized_to_utc_milliseconds(store: MongoEventStore) -> None:
    sid = stream_id()
    local = datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC) + timedelta(0)
    event = replace(make_event(sid, 1), occurred_at=local)
    stored = (await store.append(sid, [event], 0))[0]
    assert stored.occurred_at == datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert (await store.read_stream(sid))[0].occurred_at == stored.occurred_at
