"""Reading the log by bounded position ranges loses nothing: holes, filters, page sizes."""

from __future__ import annotations

import random

import pytest

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent

from .conftest import make_event, put_one, stream_id


async def _burn(store: MongoEventStore, count: int) -> None:
    """Positions taken and never used, as aborted preallocated appends leave them."""
    await store.counters.update_one(
        {"_id": f"{store.events_collection_name}.position"}, {"$inc": {"seq": count}}
    )


@pytest.fixture
async def holey_store(connection: MongoConnectionManager) -> tuple[MongoEventStore, list[str]]:
    store = MongoEventStore(connection, positions="preallocated", events_collection="holey")
    rng = random.Random(7)
    written: list[StoredEvent] = []
    streams = [stream_id() for _ in range(5)]
    versions = dict.fromkeys(streams, 0)
    await store.count()  # first use: the counter exists from here on
    await _burn(store, 3)  # a hole before the first event
    for _ in range(60):
        sid = rng.choice(streams)
        versions[sid] += 1
        kind = "Ping" if rng.random() < 0.3 else "Noted"
        written.append(await put_one(store, make_event(sid, versions[sid], event_type=kind)))
        if rng.random() < 0.3:
            await _burn(store, rng.choice([1, 2, 7, 2500]))  # holes, one wider than any page
    return store, [str(e.event_id) for e in written]


@pytest.mark.parametrize("page_size", [1, 3, 1000])
async def test_every_event_once_in_order_across_holes(
    holey_store: tuple[MongoEventStore, list[str]], page_size: int
) -> None:
    store, written = holey_store
    seen = [e async for e in store.read_all(0, page_size=page_size)]
    assert [str(e.event_id) for e in seen] == written
    positions = [e.position or 0 for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert positions[0] > 3, "the leading hole is skipped, not an error"


async def test_pages_resume_from_checkpoints_across_holes(
    holey_store: tuple[MongoEventStore, list[str]],
) -> None:
    store, written = holey_store
    seen: list[str] = []
    checkpoint = 0
    while page := await store.read_all(checkpoint, max_count=4).to_list():
        assert (
            len(page) == 4 or page[-1].event_id == (await store.read_all().to_list())[-1].event_id
        )
        seen += [str(e.event_id) for e in page]
        checkpoint = page[-1].position or checkpoint
    assert seen == written


async def test_filtered_read_across_holes(holey_store: tuple[MongoEventStore, list[str]]) -> None:
    store, _ = holey_store
    everything = await store.read_all().to_list()
    pings = [e for e in everything if e.event_type == "Ping"]
    assert pings, "the fixture writes some"
    for page_size in (1, 2, 1000):
        got = await store.read_all(0, event_types=["Ping"], page_size=page_size).to_list()
        assert [e.event_id for e in got] == [e.event_id for e in pings]


async def test_a_full_page_is_full_even_past_holes(
    holey_store: tuple[MongoEventStore, list[str]],
) -> None:
    store, written = holey_store
    page = await store.read_all(0, max_count=25).to_list()
    assert [str(e.event_id) for e in page] == written[:25]
