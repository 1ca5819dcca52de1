"""Stream lifecycle against the embedded MongoDB-compatible server, beyond the contract suite
(eventlab/contracts/_lifecycle.py, run by tests/test_contracts.py): a scavenge SIGKILLed
mid-way and completed by a rerun, and a follower reading through a scavenge while appends go
on, on both position strategies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent
from eventlab._core.lifecycle import SCAVENGED
from eventlab._core.tombstones import TOMBSTONE_FIELD
from eventlab.testing import eventually

from .conftest import make_event

CHILD = Path(__file__).with_name("_scavenge_child.py")
STALL = 120.0


def fresh_store(connection: MongoConnectionManager, positions: str) -> MongoEventStore:
    return MongoEventStore(
        connection, positions=positions, events_collection=f"life_{uuid.uuid4().hex[:8]}"
    )


async def append_many(store: MongoEventStore, sid: str, count: int, start: int = 0) -> None:
    for low in range(start, start + count, 100):
        high = min(low + 100, start + count)
        await store.append(sid, [make_event(sid, v) for v in range(low + 1, high + 1)], low)


async def tombstones(store: MongoEventStore, sid: str) -> int:
    found: int = await store.events.count_documents({"aggregate_id": sid, TOMBSTONE_FIELD: True})
    return found


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_a_scavenge_killed_mid_way_is_completed_by_a_rerun(
    connection: MongoConnectionManager, mongo_uri: str, positions: str
) -> None:
    store = fresh_store(connection, positions)
    sid = "killed-" + uuid.uuid4().hex[:8]
    await append_many(store, sid, 300)
    await store.lifecycle().truncate(sid, 300)
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            mongo_uri,
            connection.database_name,
            store.events_collection_name,
            "50",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), STALL)
        assert line.split() == ["BATCH", "50"], line
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    # Killed after one batch: that batch's events are tombstones, the rest untouched, and
    # reads never noticed (they start at the truncation either way).
    assert await tombstones(store, sid) == 50
    assert [e.version for e in await store.read_stream(sid)] == [300]
    stub = await store.events.find_one({"aggregate_id": sid, TOMBSTONE_FIELD: True})
    assert stub is not None and stub["reason"] == SCAVENGED and "payload" not in stub
    report = await store.lifecycle().scavenge()
    assert report.by_stream == {sid: 249}
    assert await tombstones(store, sid) == 299
    assert (await store.lifecycle().scavenge()).removed == 0
    follower = store.read_all()
    seen = [e.version async for e in follower]
    assert seen == [300] and follower.gaps_passed == 299


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_a_follower_reading_through_a_scavenge_sees_each_position_once(
    connection: MongoConnectionManager, positions: str
) -> None:
    """A subscription runs while a scavenge removes most of one stream and appends go on to
    another: every position ends up delivered once, in order, or reported as a gap, never
    both, never neither; every event that remains is delivered; none stalls."""
    store = fresh_store(connection, positions)
    doomed, kept = "doomed-" + uuid.uuid4().hex[:8], "kept-" + uuid.uuid4().hex[:8]
    for round_ in range(8):  # interleaved: removed positions spread across the log
        await append_many(store, doomed, 50, start=round_ * 50)
        await append_many(store, kept, 50, start=round_ * 50)
    await store.lifecycle().truncate(doomed, 351)
    delivered: list[StoredEvent] = []
    gaps: list[int] = []
    subscription = store.subscribe(page_size=40, on_gap=gaps.extend)

    async def follow() -> None:
        async for event in subscription:
            delivered.append(event)

    follower = asyncio.create_task(follow())
    more = asyncio.create_task(append_many(store, kept, 200, start=400))
    report = await store.lifecycle().scavenge(batch_size=25)
    await more
    assert report.by_stream == {doomed: 350}
    head = (await store.log.head()).position
    await eventually(lambda: subscription.position >= head, "the follower reaches the head")
    await subscription.aclose()
    await follower
    positions_seen = [e.position for e in delivered]
    assert positions_seen == sorted(set(positions_seen)), "in order, each once"
    assert not set(positions_seen) & set(gaps), "a position both delivered and a gap"
    assert set(positions_seen) | set(gaps) == set(range(1, head + 1)), "a hole unexplained"
    removed = {
        d["position"]
        async for d in store.events.find({"aggregate_id": doomed, TOMBSTONE_FIELD: True})
    }
    assert set(gaps) == removed - set(positions_seen) and len(removed) == 350
    remaining = [(e.aggregate_id, e.version) for e in await store.read_all().to_list()]
    assert set(remaining) <= {(e.aggregate_id, e.version) for e in delivered}
    assert [v for a, v in remaining if a == kept] == list(range(1, 601))
    assert [v for a, v in remaining if a == doomed] == list(range(351, 401))


async def test_the_stream_metadata_collection_is_the_events_collections(
    connection: MongoConnectionManager,
) -> None:
    store = fresh_store(connection, "transactional")
    sid = "meta-" + uuid.uuid4().hex[:8]
    await append_many(store, sid, 3)
    await store.lifecycle().set_retention(sid, max_count=2, max_age=3600)
    stored: Any = await connection.database[f"{store.events_collection_name}_streams"].find_one(
        {"_id": sid}
    )
    assert stored["max_count"] == 2 and stored["max_age_seconds"] == 3600.0
    assert stored["deleted"] is None


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_a_follower_through_a_scavenge_and_an_archive(
    connection: MongoConnectionManager,
    positions: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A subscription runs while a scavenge removes most of one stream, then an archive moves
    the log's old events out a few at a time, and appends go on throughout: every remaining
    event is delivered once, in order, each removed position is delivered or a reported gap
    (never both, never neither); a follower starting afterwards from the beginning reads the
    remaining events through the archive, and exactly the removed positions as gaps."""
    from eventlab._archive import _job

    monkeypatch.setattr(_job, "CHUNK", 40)  # many removal chunks for the follower to pass
    store = fresh_store(connection, positions)
    doomed, kept = "doomed-" + uuid.uuid4().hex[:8], "kept-" + uuid.uuid4().hex[:8]
    for round_ in range(4):  # interleaved: removed and archived positions spread across the log
        await append_many(store, doomed, 50, start=round_ * 50)
        await append_many(store, kept, 50, start=round_ * 50)
    await store.lifecycle().truncate(doomed, 151)
    gaps: list[int] = []
    subscription = store.subscribe(page_size=30, on_gap=gaps.extend)
    events = aiter(subscription)
    delivered = [await anext(events) for _ in range(20)]

    async def follow() -> None:
        async for event in events:
            delivered.append(event)

    follower = asyncio.create_task(follow())
    more = asyncio.create_task(append_many(store, kept, 300, start=200))
    assert (await store.lifecycle().scavenge(batch_size=25)).by_stream == {doomed: 150}
    through = (await store.log.head()).position
    report = await store.archive(tmp_path / "archive", through=through)
    await more
    assert report.archived > 100  # the archive moved a real part of the log
    head = (await store.log.head()).position
    await eventually(lambda: subscription.position >= head, "the follower reaches the head")
    await subscription.aclose()
    await follower

    removed = {
        d["position"]
        async for d in store.events.find({"aggregate_id": doomed, TOMBSTONE_FIELD: True})
    }
    seen = [e.position for e in delivered]
    assert len(removed) == 150 and seen == sorted(set(seen)), "in order, each once"
    assert not set(seen) & set(gaps), "a position both delivered and a gap"
    assert set(seen) | set(gaps) == set(range(1, head + 1)), "a hole unexplained"
    assert set(gaps) == removed - set(seen)
    remaining = await store.read_all().to_list()
    assert {e.position for e in remaining} == set(range(1, head + 1)) - removed
    assert {e.position for e in remaining} <= set(seen)
    assert [e.version for e in remaining if e.aggregate_id == kept] == list(range(1, 501))
    assert [e.version for e in remaining if e.aggregate_id == doomed] == list(range(151, 201))

    later: list[int] = []
    afterwards = store.subscribe(start="beginning", page_size=50, on_gap=later.extend)
    reading = aiter(afterwards)
    again = [await anext(reading) for _ in remaining]
    await afterwards.aclose()
    assert [e.event_id for e in again] == [e.event_id for e in remaining]
    assert set(later) == removed
