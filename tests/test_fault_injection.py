"""One-shot fail points at random moments during concurrent appends: nothing lost, nothing
duplicated, no position holes (transactional), no append failed by more than its fault, and
nothing left holding the counter. (What a fault costs in time: benchmarks/, "fault".)

The embedded server ignores ``activationProbability`` (such a fail point fires every time), so a
chaos task arms ``{times: 1}`` fail points at random moments instead.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pymongo.errors import ConnectionFailure

from eventlab import (
    EventlabError,
    MongoConnectionManager,
    MongoEventStore,
    StoredEvent,
)

from .conftest import counter_is_free, make_event, stream_id

FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("insert", {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}),
    ("insert", {"errorCode": 2}),  # not transient: the append fails, the writer retries it
    ("findAndModify", {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}),
    ("findAndModify", {"errorCode": 91}),
    ("commitTransaction", {"errorCode": 91, "errorLabels": ["UnknownTransactionCommitResult"]}),
    ("commitTransaction", {"errorCode": 189, "errorLabels": ["UnknownTransactionCommitResult"]}),
    ("commitTransaction", {"errorCode": 11602}),
    ("commitTransaction", {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}),
    ("commitTransaction", {"errorCode": 50, "errorLabels": ["UnknownTransactionCommitResult"]}),
    # applied, but the write concern could not be confirmed
    ("commitTransaction", {"writeConcernError": {"code": 64, "errmsg": "waiting timed out"}}),
]
WRITERS = 6
APPENDS = 20


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_concurrent_appends_under_one_shot_faults(
    connection: MongoConnectionManager, positions: str
) -> None:
    store = MongoEventStore(
        connection,
        positions=positions,
        transaction_time_budget=5,  # type: ignore[arg-type]
    )
    await store.count()
    rng = random.Random(positions)
    acknowledged: list[StoredEvent] = []
    failures_seen = 0
    armed = 0
    done = asyncio.Event()

    async def writer(w: int) -> None:
        nonlocal failures_seen
        sid = f"{stream_id()}-w{w}"
        for n in range(APPENDS):
            events = [make_event(sid, 2 * n + 1), make_event(sid, 2 * n + 2)]
            while True:  # the documented way: retry the same events (same ids) after an error
                try:
                    acknowledged.extend(await store.append(sid, events, 2 * n))
                    break
                except EventlabError:
                    failures_seen += 1

    async def chaos() -> None:
        nonlocal armed
        while not done.is_set():
            await asyncio.sleep(rng.uniform(0.01, 0.08))
            command, data = rng.choice(FAULTS)
            try:
                await connection.client.admin.command(
                    {
                        "configureFailPoint": "failCommand",
                        "mode": {"times": 1},
                        "data": {"failCommands": [command], **data},
                    }
                )
            except ConnectionFailure:
                # A connection fault armed a moment ago paused the driver's pool: the
                # arming itself meets it; the next round arms again.
                continue
            armed += 1

    chaos_task = asyncio.create_task(chaos())
    try:
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    finally:
        done.set()
        await chaos_task
        await connection.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})

    stored = await store.read_all().to_list()
    ids = [e.event_id for e in stored]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert set(ids) == {e.event_id for e in acknowledged}, "an acknowledged event was lost"
    assert len(stored) == WRITERS * APPENDS * 2
    positions_seen = [e.position or 0 for e in stored]
    assert len(positions_seen) == len(set(positions_seen)), "a position was stored twice"
    if positions == "transactional":
        assert positions_seen == list(range(1, len(stored) + 1)), "holes in the log"
    by_stream: dict[str, list[int]] = {}
    for event in stored:
        by_stream.setdefault(event.aggregate_id, []).append(event.version)
    assert all(sorted(v) == list(range(1, APPENDS * 2 + 1)) for v in by_stream.values())
    assert armed >= 10, "the chaos task armed too few faults to prove anything"
    assert failures_seen <= armed, "an append failed more often than faults were armed"
    assert await counter_is_free(store), "a faulted transaction was left holding the counter"
