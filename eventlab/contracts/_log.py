"""The log's contracts: every stream in position order, resumable from any checkpoint, filtered
by what it selects, followed live, and a hole settled for good."""

from __future__ import annotations

import asyncio

import pytest

from .._core.errors import ConfigurationError, EventlabError
from .._core.records import StoredEvent
from .._follow.catch_up import CatchUpSubscription
from ..ports import EventStore
from ._support import NeedsAStore, contract_event, unique


async def _head(store: EventStore) -> int:
    return (await store.log.head()).position


def _read_all(store: EventStore, after: int = 0, **options: object) -> CatchUpSubscription:
    return CatchUpSubscription(store.log, start=after, live=False, **options)  # type: ignore[arg-type]


class EventLogContract(NeedsAStore):
    """The log reads every stream in position order; resuming from a checkpoint loses nothing
    and repeats nothing; a filter hands out what it selects and still moves the checkpoint."""

    async def _write_three_streams(self, store: EventStore) -> tuple[int, list[StoredEvent]]:
        start = await _head(store)
        streams = [unique() for _ in range(3)]
        written: list[StoredEvent] = []
        for version in (1, 2, 3):
            for sid in streams:
                written += await store.append(sid, [contract_event(sid, version)], version - 1)
        return start, written

    async def test_the_log_in_position_order_and_resumable(
        self, contract_store: EventStore
    ) -> None:
        start, written = await self._write_three_streams(contract_store)
        log = await _read_all(contract_store, start).to_list()
        assert [e.event_id for e in log] == [e.event_id for e in written]
        positions = [e.position or 0 for e in log]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        seen: list[StoredEvent] = []
        checkpoint = start
        while page := await _read_all(
            contract_store, checkpoint, max_count=2, page_size=2
        ).to_list():
            seen += page
            checkpoint = page[-1].position or checkpoint
        assert [e.event_id for e in seen] == [e.event_id for e in log]

    async def test_a_read_ends_at_the_head_it_started_with(
        self, contract_store: EventStore
    ) -> None:
        start, written = await self._write_three_streams(contract_store)
        reading = _read_all(contract_store, start, page_size=2)
        seen = []
        async for event in reading:
            seen.append(event)
            if len(seen) == 1:  # appended while the read runs: after its head
                late = unique()
                await contract_store.append(late, [contract_event(late)], 0)
        assert [e.event_id for e in seen] == [e.event_id for e in written]

    async def test_filters_select_and_move_the_checkpoint(self, contract_store: EventStore) -> None:
        start = await _head(contract_store)
        sid = unique()
        other = contract_event(sid, 2, "ContractOther")
        await contract_store.append(sid, [contract_event(sid, 1), other, contract_event(sid, 3)], 0)
        only = _read_all(contract_store, start, event_types=["ContractOther"], page_size=1)
        assert [e.event_id for e in await only.to_list()] == [other.event_id]
        assert only.position == await _head(contract_store)
        none = _read_all(contract_store, start, aggregate_types=["Nothing"])
        assert await none.to_list() == [] and none.position == await _head(contract_store)

    async def test_head_and_ranges_of_the_log_port(self, contract_store: EventStore) -> None:
        sid = unique()
        stored = await contract_store.append(sid, [contract_event(sid) for _ in range(4)], 0)
        first, last = stored[0].position or 0, stored[-1].position or 0
        head = await contract_store.log.head()
        assert head.position >= last and head.strategy in ("transactional", "preallocated")
        whole = await contract_store.log.read(first - 1, last, every_position=True)
        assert [e.position for e in whole.events] == [e.position for e in stored]
        assert whole.present is not None and set(range(first, last + 1)) <= whole.present
        cut = await contract_store.log.read(first - 1, last, limit=2)
        assert cut.through == first + 1 and [e.position for e in cut.events] == [first, first + 1]
        assert (await contract_store.log.read(last, last)).events == []

    async def test_a_filled_position_cannot_be_abandoned(self, contract_store: EventStore) -> None:
        sid = unique()
        (stored,) = await contract_store.append(sid, [contract_event(sid)], 0)
        outcome = await contract_store.log.abandon([stored.position or 0])
        assert outcome.filled == (stored.position,) and outcome.abandoned == ()
        assert [e.event_id for e in await contract_store.read_stream(sid)] == [stored.event_id]

    async def test_bad_reads_are_typed_errors(self, contract_store: EventStore) -> None:
        for options in ({"page_size": 0}, {"max_count": 0}, {"event_types": [{"$ne": 1}]}):
            with pytest.raises(ConfigurationError):
                _read_all(contract_store, 0, **options)
        with pytest.raises(EventlabError):
            await contract_store.log.read(-1, 5)
        with pytest.raises(EventlabError):
            await contract_store.log.abandon([0])

    async def test_the_head_covers_every_committed_append(self, contract_store: EventStore) -> None:
        before = await _head(contract_store)
        sid = unique()
        for version in (1, 2, 3):
            (stored,) = await contract_store.append(
                sid, [contract_event(sid, version)], version - 1
            )
            head = await _head(contract_store)
            assert head >= (stored.position or 0) > before
            before = head

    async def test_wakeups_wake_on_appends_and_on_demand(self, contract_store: EventStore) -> None:
        async with contract_store.log.wakeups() as wakeups:
            wakeups.wake()
            await asyncio.wait_for(wakeups.wait(3600), 30)  # a wake is not lost before a wait
            if wakeups.watching:  # appends wake it; otherwise its caller polls
                waiting = asyncio.ensure_future(wakeups.wait(3600))
                sid = unique()
                await contract_store.append(sid, [contract_event(sid)], 0)
                await asyncio.wait_for(waiting, 30)
            waiting = asyncio.ensure_future(wakeups.wait(3600))
            await asyncio.sleep(0)  # let it start waiting before it is woken
            wakeups.wake()
            await asyncio.wait_for(waiting, 30)


class SubscriptionContract(NeedsAStore):
    """A subscription catches up, then hands out new events as they are appended, in order."""

    async def test_catch_up_then_live(self, contract_store: EventStore) -> None:
        start = await _head(contract_store)
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)
        subscription = CatchUpSubscription(contract_store.log, start=start, poll_interval=0.05)
        seen: list[int] = []
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for event in subscription:
                seen.append(event.position or 0)
                caught_up.set()
                if len(seen) == 4:
                    return

        task = asyncio.create_task(follow())
        await asyncio.wait_for(caught_up.wait(), 30)
        for version in (2, 3, 4):
            await contract_store.append(sid, [contract_event(sid, version)], version - 1)
        await asyncio.wait_for(task, 30)
        await subscription.aclose()
        assert seen == sorted(seen) and len(set(seen)) == 4
        assert subscription.closed and not subscription.watching

    async def test_start_at_the_end_sees_only_new_events(self, contract_store: EventStore) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)
        async with CatchUpSubscription(
            contract_store.log, start="end", poll_interval=0.05
        ) as subscription:
            iterator = subscription.__aiter__()
            waiting = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait_for(subscription.ready.wait(), 30)
            (new,) = await contract_store.append(sid, [contract_event(sid, 2)], 1)
            assert (await asyncio.wait_for(waiting, 30)).event_id == new.event_id
            await iterator.aclose()  # type: ignore[attr-defined]

    async def test_a_subscription_is_iterated_once(self, contract_store: EventStore) -> None:
        from .._core.errors import SubscriptionError

        subscription = _read_all(contract_store, await _head(contract_store))
        assert await subscription.to_list() == []
        with pytest.raises(SubscriptionError):
            await subscription.to_list()
        with pytest.raises(SubscriptionError):
            await CatchUpSubscription(contract_store.log).to_list()  # live: never ends

    async def test_parallel_writers_followed_live_none_skipped_or_repeated(
        self, contract_store: EventStore
    ) -> None:
        start = await _head(contract_store)
        subscription = CatchUpSubscription(contract_store.log, start=start, poll_interval=0.05)
        expected: set[str] = set()
        seen: list[StoredEvent] = []

        async def write(writer: int) -> None:
            sid = unique(f"writer{writer}")
            for version in range(1, 6):
                (stored,) = await contract_store.append(
                    sid, [contract_event(sid, version)], version - 1
                )
                expected.add(str(stored.event_id))

        async def follow() -> None:
            async for event in subscription:
                seen.append(event)
                if len(seen) == 40:
                    return

        following = asyncio.create_task(follow())
        await asyncio.gather(*(write(w) for w in range(8)))
        await asyncio.wait_for(following, 60)
        await subscription.aclose()
        positions = [e.position or 0 for e in seen]
        assert positions == sorted(positions) and len(set(positions)) == 40, "in order, once"
        assert {str(e.event_id) for e in seen} == expected, "every committed event, no other"

    async def test_a_live_filter_hands_out_only_what_it_selects(
        self, contract_store: EventStore
    ) -> None:
        start = await _head(contract_store)
        subscription = CatchUpSubscription(
            contract_store.log, start=start, event_types=["ContractPicked"], poll_interval=0.05
        )
        picked: list[str] = []
        sid = unique()

        async def follow() -> None:
            async for event in subscription:
                picked.append(event.event_type)
                if len(picked) == 2:
                    return

        following = asyncio.create_task(follow())
        await contract_store.append(
            sid,
            [
                contract_event(sid, 1),
                contract_event(sid, 2, "ContractPicked"),
                contract_event(sid, 3),
                contract_event(sid, 4, "ContractPicked"),
            ],
            0,
        )
        await asyncio.wait_for(following, 30)
        assert picked == ["ContractPicked", "ContractPicked"]
        assert subscription.position == (await contract_store.read_stream(sid))[3].position
        await subscription.aclose()
