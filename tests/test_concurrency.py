"""Concurrency claims, proven with many concurrent writers against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eventlab import (
    ConcurrencyError,
    DeploymentError,
    MongoConnectionManager,
    MongoEventStore,
    StoredEvent,
)

from .conftest import make_event, stream_id

pytestmark = pytest.mark.slow

WRITERS = 16
ROUNDS = 100


async def test_one_winner_per_expected_version(store: MongoEventStore) -> None:
    """16 writers race on one stream with the same expected version, 100 times over (the
    default, transactional positions; 50 times with preallocated ones, to keep CI short)."""
    sid = stream_id()
    acknowledged: list[StoredEvent] = []
    rounds = ROUNDS if store.position_strategy == "transactional" else 50
    for round_number in range(rounds):

        async def writer(i: int, expected: int = round_number) -> list[StoredEvent] | None:
            events = [make_event(sid, 1, writer=i), make_event(sid, 2, writer=i)]
            try:
                return await store.append(sid, events, expected_version=expected * 2)
            except ConcurrencyError as exc:
                assert exc.aggregate_id == sid
                assert exc.expected_version == expected * 2
                assert exc.actual_version >= expected * 2 + 2
                return None

        results = await asyncio.gather(*(writer(i) for i in range(WRITERS)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, f"round {round_number}: {len(winners)} winners"
        acknowledged.extend(winners[0])

    stored = await store.read_stream(sid)
    versions = [e.version for e in stored]
    assert versions == list(range(1, 2 * rounds + 1)), "duplicate or missing versions"
    assert [e.event_id for e in stored] == [e.event_id for e in acknowledged]
    # the two events of each winning batch come from the same writer: no interleaving
    for first, second in zip(stored[::2], stored[1::2], strict=True):
        assert first.payload["writer"] == second.payload["writer"]


async def _run_writers(
    store: MongoEventStore, writers: int, batches: int, batch_size: int
) -> tuple[list[StoredEvent], int]:
    acknowledged: list[StoredEvent] = []

    async def writer(w: int) -> None:
        sid = f"{stream_id()}-w{w}"
        for b in range(batches):
            events = [make_event(sid, b * batch_size + k + 1) for k in range(batch_size)]
            acknowledged.extend(await store.append(sid, events, b * batch_size))

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return acknowledged, writers * batches * batch_size


async def test_transactional_positions_are_contiguous_and_in_commit_order(
    connection: MongoConnectionManager, tx_store: MongoEventStore
) -> None:
    await tx_store.migrate()
    await tx_store.get_current_version("warm-up")  # resolve strategy and seed the counter
    change_stream = await tx_store.events.watch([{"$match": {"operationType": "insert"}}])
    acknowledged, total = await _run_writers(tx_store, writers=8, batches=100, batch_size=3)

    stored = await tx_store.read_all().to_list()
    positions = [e.position for e in stored]
    assert positions == list(range(1, total + 1)), "gap or duplicate in global positions"
    assert {e.event_id for e in stored} == {e.event_id for e in acknowledged}

    # The change stream delivers inserts in oplog (= commit) order.
    commit_order: list[int] = []
    async with change_stream:
        while len(commit_order) < total:
            change = await asyncio.wait_for(change_stream.next(), timeout=30)
            commit_order.append(change["fullDocument"]["position"])
    assert commit_order == list(range(1, total + 1)), "position order differs from commit order"


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_aborted_appends_leave_gaps_only_with_preallocated_positions(
    connection: MongoConnectionManager, registry: Any, positions: str
) -> None:
    """8 writers; the server fails 40 of their inserts (a fail point), aborting those appends."""
    store = MongoEventStore(connection, registry=registry, positions=positions)  # type: ignore[arg-type]
    await store.get_current_version("warm-up")
    failures = 40
    await connection.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": failures},
            "data": {"failCommands": ["insert"], "errorCode": 2, "errorLabels": []},
        }
    )
    aborted_positions = 0
    acknowledged: list[StoredEvent] = []

    async def writer(w: int) -> None:
        nonlocal aborted_positions
        sid = f"{stream_id()}-w{w}"
        version = 0
        for _ in range(30):
            events = [make_event(sid, 1), make_event(sid, 2)]
            try:
                acknowledged.extend(await store.append(sid, events, version))
                version += 2
            except DeploymentError:
                aborted_positions += len(events)

    try:
        await asyncio.gather(*(writer(w) for w in range(8)))
    finally:
        await connection.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})

    assert aborted_positions == failures * 2
    stored = await store.read_all().to_list()
    positions = [e.position for e in stored]
    assert len(positions) == len(set(positions)) == len(acknowledged) == 8 * 30 * 2 - failures * 2
    assert {e.event_id for e in stored} == {e.event_id for e in acknowledged}
    highest = max(positions)
    missing = set(range(1, highest + 1)) - set(positions)
    if positions_are_transactional(store):
        assert not missing and await _counter(store) == highest
    else:
        # every position an aborted append took is a gap (or lies past the highest stored one)
        assert len(missing) + (await _counter(store) - highest) == aborted_positions
        assert missing, "expected gaps from aborted preallocated appends"


def positions_are_transactional(store: MongoEventStore) -> bool:
    return store.position_strategy == "transactional"


async def _counter(store: MongoEventStore) -> int:
    doc = await store.counters.find_one({"_id": f"{store.events_collection_name}.position"})
    assert doc is not None
    return int(doc["seq"])
