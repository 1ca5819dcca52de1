"""Positions by the store's strategy (docs/positions.md), with appends held at the race point
``append.positions_taken`` (between taking positions and inserting) to force interleavings:
holes and commits out of position order with ``preallocated`` positions, a tombstone that
beats an append that has not inserted, an append that holds its position, the head's settled
range, and a migration between the strategies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .._core import races as races
from .._core.errors import EventlabError, WriteConflictError
from .._core.records import StoredEvent
from ..ports import EventStore, UnitOfWork
from ._support import NeedsAStore, contract_event, unique

POSITIONS_TAKEN = "append.positions_taken"


async def _strategy(store: EventStore) -> str:
    return (await store.log.head()).strategy


async def _preallocated(store: EventStore) -> None:
    if await _strategy(store) != "preallocated":
        pytest.skip("a preallocated store's behaviour")


class PositionsContract(NeedsAStore):
    """Holes, tombstones and settled positions, on either strategy."""

    async def test_a_late_commit_leaves_a_hole_followers_do_not_pass(
        self, contract_store: EventStore
    ) -> None:
        await _preallocated(contract_store)
        start = (await contract_store.log.head()).position
        slow_id, fast_id = unique(), unique()
        async with races.paused_at(POSITIONS_TAKEN) as pause:
            slow = asyncio.create_task(contract_store.append(slow_id, [contract_event(slow_id)], 0))
            await pause.reached.wait()
            (fast,) = await contract_store.append(fast_id, [contract_event(fast_id)], 0)
            head = await contract_store.log.head()
            seen = await contract_store.log.read(start, head.position, every_position=True)
            assert seen.present is not None and (fast.position or 0) - 1 not in seen.present
            assert not head.vouches_for(start, head.position), "an open hole is not vouched for"
            pause.resume()
            (late,) = await slow
        assert late.position == (fast.position or 0) - 1, "committed after a later position"
        log = await contract_store.read_all(start).to_list()  # type: ignore[attr-defined]
        assert [e.event_id for e in log] == [late.event_id, fast.event_id]

    async def test_a_tombstone_beats_an_append_that_has_not_inserted(
        self, contract_store: EventStore
    ) -> None:
        """The follower's tombstone wins the position; the append goes again elsewhere."""
        await _preallocated(contract_store)
        sid = unique()
        async with races.paused_at(POSITIONS_TAKEN) as pause:
            slow = asyncio.create_task(contract_store.append(sid, [contract_event(sid)], 0))
            await pause.reached.wait()
            hole = (await contract_store.log.head()).position
            outcome = await contract_store.log.abandon([hole])
            pause.resume()
            (stored,) = await slow
        assert outcome.abandoned == (hole,)
        assert (stored.position or 0) > hole
        seen = await contract_store.log.read(hole - 1, stored.position or 0)
        assert seen.abandoned == (hole,) and [e.event_id for e in seen.events] == [stored.event_id]

    async def test_in_a_unit_of_work_an_abandoned_position_loses_the_unit(
        self, contract_store: EventStore
    ) -> None:
        """The caller's transaction is lost with its position. Its snapshot predates the
        tombstone (the append's own idempotency read took it), so its insert there is a write
        conflict, not a duplicate (PositionsAbandonedError): either way the runner runs the
        unit again, at fresh positions."""
        await _preallocated(contract_store)
        sid = unique()
        errors: list[type[Exception]] = []

        async def work(uow: UnitOfWork) -> list[StoredEvent]:
            try:
                return await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)
            except EventlabError as exc:
                errors.append(type(exc))
                raise

        async with races.paused_at(POSITIONS_TAKEN) as pause:
            unit = asyncio.create_task(contract_store.backend.run(work))
            await pause.reached.wait()
            hole = (await contract_store.log.head()).position
            assert (await contract_store.log.abandon([hole])).abandoned == (hole,)
            pause.resume()
            (stored,) = await unit
        assert errors == [WriteConflictError], errors
        assert (stored.position or 0) > hole
        assert [e.version for e in await contract_store.read_stream(sid)] == [1]

    async def test_an_append_that_inserted_holds_its_position(
        self, contract_store: EventStore
    ) -> None:
        """Until it commits the position is in flight, whatever the strategy; then filled."""
        sid = unique()
        inserted, go = asyncio.Event(), asyncio.Event()
        positions: list[int] = []

        async def work(uow: UnitOfWork) -> None:
            (stored,) = await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)
            positions.append(stored.position or 0)
            inserted.set()
            await go.wait()

        unit = asyncio.create_task(contract_store.backend.run(work))
        await inserted.wait()
        held = await contract_store.log.abandon([positions[0]])
        go.set()
        await unit
        assert held.in_flight == (positions[0],) and held.abandoned == ()
        assert (await contract_store.log.abandon([positions[0]])).filled == (positions[0],)

    async def test_the_head_vouches_for_what_its_strategy_settles(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid), contract_event(sid)], 0)
        head = await contract_store.log.head()
        if head.strategy == "preallocated":
            assert head.settled_after == head.position
        else:
            assert head.settled_after == 0 and head.vouches_for(0, head.position)

    async def test_a_migration_between_the_strategies(self, contract_store: EventStore) -> None:
        change: Any = getattr(contract_store, "change_position_strategy", None)
        if change is None:
            pytest.skip("the store has no strategy migration")
        original = await _strategy(contract_store)
        other = "preallocated" if original == "transactional" else "transactional"
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)
        assert await change(other) is True and await change(other) is False
        head = await contract_store.log.head()
        assert head.strategy == other and head.settled_after == head.position
        (after,) = await contract_store.append(sid, [contract_event(sid, 2)], 1)
        assert after.position == head.position + 1
        assert await change(original) is True
        back = await contract_store.log.head()
        if original == "transactional":  # what was taken the other way stays unsettled
            assert back.settled_after == back.position == after.position
        else:
            assert back.settled_after == back.position
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2]
