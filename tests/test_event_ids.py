"""Event ids follow one rule everywhere: a UUID, or its canonical string, converted on entry."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from eventlab import DomainEvent, MongoEventStore, StoredEvent

from .conftest import put_one, stream_id

NOT_UUIDS: list[Any] = [
    "not-a-uuid",
    "",
    "12345678123456781234567812345678",  # bare hex: accepted by uuid.UUID, not canonical
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678",
    "12345678-1234-5678-1234-5678123456789",
    " 12345678-1234-5678-1234-567812345678",
    b"\x12" * 16,
    123,
    None,
    {"$ne": None},
]


class Pinged(DomainEvent):
    aggregate_type = "Probe"
    n: int


def stored(event_id: Any, aggregate_id: str = "probe-1") -> StoredEvent:
    return StoredEvent(
        event_id=event_id,
        event_type="Pinged",
        aggregate_id=aggregate_id,
        aggregate_type="Probe",
        version=1,
        payload={"n": 1},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_a_string_id_round_trips_through_the_store(tx_store: MongoEventStore) -> None:
    text = str(uuid.uuid4())
    sid = stream_id()
    tx_store.registry.register(Pinged)
    saved = (await tx_store.append(sid, [Pinged(n=1, event_id=text)], 0))[0]
    # The same event re-sent as a record with the id as a string: an idempotent retry.
    resent = replace(saved, event_id=text, position=None, recorded_at=None)  # type: ignore[arg-type]
    again = await put_one(tx_store, resent)
    assert saved.event_id == again.event_id == uuid.UUID(text)
    assert [e.event_id for e in await tx_store.read_stream(sid)] == [uuid.UUID(text)]
