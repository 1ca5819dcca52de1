"""The facade over the store's parts: new names, old aliases, the restore guard."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest

import eventlab
from eventlab import ConfigurationError, InvalidEventError, MongoEventStore

from .conftest import make_event, stream_id


def test_renamed_classes_keep_their_old_names_with_a_warning() -> None:
    for old, new in (
        ("MongoDBModelMapper", "MongoModelMapper"),
        ("MongoOutboxStorage", "MongoOutboxStore"),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert getattr(eventlab, old) is getattr(eventlab, new)
        assert any(
            issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught
        )
    with pytest.raises(AttributeError):
        _ = eventlab.NoSuchThing  # type: ignore[attr-defined]


def test_types_for_user_code_are_exported() -> None:
    assert eventlab.PositionStrategy.__args__ == ("transactional", "preallocated")  # type: ignore[attr-defined]
    assert hasattr(eventlab.SessionProvider, "session")


async def test_aliases_read_what_the_new_names_read(store: MongoEventStore) -> None:
    sid = stream_id()
    await store.append_batch([make_event(sid, v) for v in (1, 2, 3)])
    assert await store.get_events(sid) == await store.read_stream(sid)
    assert [e.event_id for e in await store.load_events(sid, unknown="raw")] == [
        e.event_id for e in await store.read_stream(sid, typed=True, unknown="raw")
    ]
    log = await store.read_all().to_list()
    assert await store.read_all().to_list() == log
    assert await store.read_all(0, max_count=2).to_list() == log[:2]
    assert [e async for e in store.read_all(0, page_size=1)] == log
    with pytest.raises(ConfigurationError, match="max_count"):
        store.read_all(0, max_count=0)
    with pytest.raises(ConfigurationError, match="max_count"):
        await store.read_stream(sid, max_count=0)


async def test_restore_never_reuses_a_position_handed_out(tx_store: MongoEventStore) -> None:
    sid = stream_id()
    live = await tx_store.append_batch([make_event(sid, 1), make_event(sid, 2)])
    other = stream_id()
    clash = [replace(make_event(other, 1), position=live[-1].position)]
    with pytest.raises(InvalidEventError, match="reuse position"):
        await tx_store.restore(clash)
    assert await tx_store.read_stream(other) == []
    nxt = await tx_store.append(make_event(sid, 3))
    assert nxt.position == (live[-1].position or 0) + 1, "the counter was not moved"

    above = [replace(make_event(other, 1), position=(nxt.position or 0) + 10)]
    assert await tx_store.restore(above) == 1
    after = await tx_store.append(make_event(sid, 4))
    assert after.position == (nxt.position or 0) + 11, "the counter moved past the restore"
