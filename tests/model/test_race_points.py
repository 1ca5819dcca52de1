"""Every race point of eventlab's hard paths is where its name says, on the MongoDB backend
(found by running one operation per point with it armed: eventlab.statemachines._lanes.probe),
and the backend-neutral ones on the in-memory backend too."""

from __future__ import annotations

import asyncio

from eventlab._core import race_points as _race_points
from eventlab._core import races as _races
from eventlab.statemachines import MemoryLanes, MongoLanes


def declared() -> set[str]:
    return {
        value.name for value in vars(_race_points).values() if isinstance(value, _races.RacePoint)
    }


PROBED_ELSEWHERE = {
    # Reached only at a hole a follower gives up: the stream machine's abandonment rule.
    "follow.before_abandon",
    # A consumer's run stopped at each of its moments: tests/fast/test_supervision.py.
    "subscriber.claimed",
    "subscriber.subscribing",
    "projector.generation_read",
    # A writer killed at each of its transaction's moments: tests/test_liveness.py.
    "transaction.listed",
    "transaction.before_commit",
    # An import stopped, or met another writer, before its last chunk:
    # tests/test_import_whole.py.
    "import.before_chunk",
    # An archive or a restore SIGKILLed at each of its moments: tests/test_archive.py.
    "archive.files_written",
    "archive.removing",
    "archive.restoring",
}


def test_the_catalogue_declares_each_point_once() -> None:
    catalogue = declared()
    assert catalogue == {
        "append.positions_taken",
        "uow.before_commit",
        "follow.head_read",
        "follow.before_abandon",
        "batch.handled",
        "lease.expired_seen",
        "lease.taken_over",
        "dcb.read.head_taken",
        "dcb.read.between_items",
        "dcb.append.before_check",
        "subscriber.claimed",
        "subscriber.subscribing",
        "projector.generation_read",
        "transaction.listed",
        "transaction.before_commit",
        "import.before_chunk",
        "archive.files_written",
        "archive.removing",
        "archive.restoring",
    }
    assert catalogue <= set(_races.names())


def test_mongo_marks_every_point_of_its_paths(mongo_uri: str, database_name: str) -> None:
    async def points() -> dict[str, frozenset[str]]:
        lanes = MongoLanes(mongo_uri, database_name)
        try:
            return {lane.name: lane.points for lane in await lanes.open()}
        finally:
            await lanes.close()

    found = asyncio.run(points())
    catalogue = declared()
    assert found["mongo/transactional"] == catalogue - PROBED_ELSEWHERE
    # DCB refuses preallocated positions: no DCB point is reached there.
    assert found["mongo/preallocated"] == {
        p for p in catalogue - PROBED_ELSEWHERE if not p.startswith("dcb.")
    }


def test_memory_marks_the_points_of_the_code_it_shares() -> None:
    async def points() -> frozenset[str]:
        (lane, *_) = await MemoryLanes().open()
        return lane.points

    assert {"follow.head_read", "batch.handled"} <= asyncio.run(points())
