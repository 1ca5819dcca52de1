from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st

from eventlab import (
    DomainEvent,
    EventRegistry,
    MongoEventStore,
    StoredEvent,
    UnknownEventTypeError,
)

from .conftest import put_one, stream_id
from .domain import LineAdded


class RenamedV2(DomainEvent):
    """v1 had ``name``; v2 splits it into ``first`` and ``last``."""

    event_type = "PersonRenamed"
    schema_version = 3
    aggregate_type = "Person"
    first: str
    last: str
    title: str


def person_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(RenamedV2)

    @registry.upcaster("PersonRenamed", from_version=1)
    def split_name(payload: dict[str, Any]) -> dict[str, Any]:
        first, _, last = payload.pop("name").partition(" ")
        return {**payload, "first": first, "last": last}

    @registry.upcaster("PersonRenamed", from_version=2)
    def add_title(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "title": ""}

    return registry


payload_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.uuids()
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20
    )
    | st.datetimes(timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


async def test_old_payload_in_the_database_loads_as_current_class(connection: Any) -> None:
    store = MongoEventStore(connection, registry=person_registry())
    sid = stream_id()
    v1 = StoredEvent(
        event_id=uuid.uuid4(),
        event_type="PersonRenamed",
        aggregate_id=sid,
        aggregate_type="Person",
        version=1,
        payload={"name": "Ada Lovelace"},
        occurred_at=datetime.now(UTC),
        schema_version=1,
    )
    await put_one(store, v1)
    raw = await store.events.find_one({"_id": v1.event_id})
    assert (
        raw is not None
        and raw["schema_version"] == 1
        and raw["payload"] == {"name": "Ada Lovelace"}
    )
    (loaded,) = await store.read_domain_events(sid)
    assert isinstance(loaded, RenamedV2)
    assert (loaded.first, loaded.last, loaded.title) == ("Ada", "Lovelace", "")
    assert loaded.event_id == v1.event_id


async def test_unknown_type_in_store(connection: Any) -> None:
    store = MongoEventStore(connection, registry=EventRegistry())
    sid = stream_id()
    with pytest.raises(UnknownEventTypeError):  # writing an unregistered class
        await store.append(sid, [LineAdded(sku="a", quantity=1, price=Decimal(1))], 0)
    assert await store.read_stream(sid) == []
