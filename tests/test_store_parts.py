"""The facade over the store's parts: one name per operation, the restore guard."""

from __future__ import annotations

from dataclasses import replace

import pytest

import eventlab
from eventlab import InvalidEventError, MongoEventStore

from .conftest import make_event, put, put_one, stream_id


def test_one_name_per_operation() -> None:
    for gone in ("MongoDBModelMapper", "MongoOutboxStorage", "EventStream"):
        assert not hasattr(eventlab, gone), gone
    for gone in (
        "save_events",
        "append_batch",
        "get_events",
        "load_events",
        "get_events_from_position",
        "get_events_after",
        "get_all_events",
    ):
        assert not hasattr(MongoEventStore, gone), gone
    for kept in ("append", "read_stream", "read_all", "subscribe", "get_current_version"):
        assert callable(getattr(MongoEventStore, kept)), kept
    with pytest.raises(AttributeError):
        _ = eventlab.NoSuchThing  # type: ignore[attr-defined]


def test_types_for_user_code_are_exported() -> None:
    assert eventlab.PositionStrategy.__args__ == ("transactional", "preallocated")  # type: ignore[attr-defined]
    assert hasattr(eventlab.UnitOfWork, "session")
    assert not hasattr(eventlab, "SessionProvider")


async def test_restore_never_reuses_a_position_handed_out(tx_store: MongoEventStore) -> None:
    sid = stream_id()
    live = await put(tx_store, [make_event(sid, 1), make_event(sid, 2)])
    other = stream_id()
    clash = [replace(make_event(other, 1), position=live[-1].position)]
    with pytest.raises(InvalidEventError, match="reuse position"):
        await tx_store.restore(clash)
    assert await tx_store.read_stream(other) == []
    nxt = await put_one(tx_store, make_event(sid, 3))
    assert nxt.position == (live[-1].position or 0) + 1, "the counter was not moved"

    above = [replace(make_event(other, 1), position=(nxt.position or 0) + 10)]
    assert await tx_store.restore(above) == 1
    after = await put_one(tx_store, make_event(sid, 4))
    assert after.position == (nxt.position or 0) + 11, "the counter moved past the restore"
