"""Followers you can trust: no committed event skipped whatever its transaction's duration,
holes paid for once, the strategy taken from the store, crash takeover by a lease, rebuilds
that readers never notice, and filters that read only what they select.

Deadlines here only detect a stall (each is several times what the behaviour needs); how fast
each thing happens is measured in benchmarks/test_bench_followers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pymongo import monitoring

from eventlab import (
    AggregateStore,
    CatchUpSubscription,
    ConfigurationError,
    EventlabError,
    MongoConnectionManager,
    MongoEventStore,
    MongoUnitOfWork,
    PositionsAbandonedError,
    Projector,
    RebuildInProgressError,
    StoredEvent,
    Subscriber,
    run_unit_of_work,
)
from eventlab.ports import Abandonment, EventLog, LogHead, LogSlice, Wakeups
from eventlab.samples import OrderTotals
from eventlab.testing import eventually
from eventlab.workbench import read_frame, replay_projection

from .conftest import make_event, stream_id
from .test_projections import fresh_orders, orders_store, rows_of
from .test_subscriptions import append_one, count_effect, effects_of

CHILD = Path(__file__).with_name("_subscriber_child.py")
STALL = 30.0
"""Seconds after which a follower that has not caught up is stalled (each behaviour here
needs a few seconds at most)."""


class CountingLog:
    """An :class:`EventLog` that records each read and each abandonment round (a test double
    of the port, wrapped around the real one)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.rounds: list[tuple[float, list[int], Abandonment]] = []
        self.reads: list[tuple[int, int]] = []

    async def head(self) -> LogHead:
        return await self._log.head()

    async def read(self, after: int, until: int, **options: Any) -> LogSlice:
        self.reads.append((after, until))
        return await self._log.read(after, until, **options)

    def times_read(self, position: int) -> int:
        """How many reads covered ``position``."""
        return sum(after < position <= until for after, until in self.reads)

    def tried_to_abandon(self, position: int) -> bool:
        return any(position in positions for _, positions, _ in self.rounds)

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        outcome = await self._log.abandon(positions)
        self.rounds.append((time.monotonic(), list(positions), outcome))
        return outcome

    def wakeups(self, **options: Any) -> Wakeups:
        return self._log.wakeups(**options)


# -- holes: paid once, never skipped -------------------------------------------------------


@pytest.mark.slow
async def test_a_burst_of_aborted_appends_costs_one_gap_timeout_not_one_per_hole(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await store.count()
    log = CountingLog(store.log)
    gap_timeout = 1.0
    subscription = CatchUpSubscription(log, gap_timeout=gap_timeout, poll_interval=0.1)
    delivered: list[int] = []

    async def follow() -> None:
        async for event in subscription:
            delivered.append(event.position or 0)

    follower = asyncio.create_task(follow())
    rng = random.Random(25)
    acknowledged: list[int] = []
    aborted = 0

    async def writer() -> None:
        nonlocal aborted
        for _ in range(60):
            aggregate = stream_id()
            if rng.random() < 0.25:  # positions taken, then the transaction aborted
                aborted += 1
                with contextlib.suppress(EventlabError):
                    async with MongoUnitOfWork(connection) as uow:
                        await store.append(aggregate, [make_event(aggregate, 1)], 0, uow=uow)
                continue
            (stored,) = await store.append(aggregate, [make_event(aggregate, 1)], 0)
            acknowledged.append(stored.position or 0)

    try:
        await asyncio.gather(*(writer() for _ in range(8)))
        writes_ended = time.monotonic()
        head = (await store.log.head()).position

        async def caught_up() -> bool:
            return subscription.position >= head

        await eventually(caught_up, "delivering everything after the writes ended")
        caught_up_after = time.monotonic() - writes_ended
    finally:
        await subscription.aclose()
        await asyncio.wait_for(follower, 10)
    stored_positions = sorted(e.position or 0 for e in await store.read_all().to_list())
    assert delivered == stored_positions == sorted(acknowledged), "skipped, repeated or reordered"
    burned = sorted(set(range(1, head + 1)) - set(stored_positions))
    assert len(burned) == aborted >= 60, "every aborted append burned one position"
    assert subscription.gaps == burned, "each hole abandoned and reported once"
    # Every hole was abandoned by the subscription itself, in rounds that each took every
    # hole ripe at that moment (never one hole per gap_timeout, which took minutes here).
    abandoned = sorted(p for _, _, outcome in log.rounds for p in outcome.abandoned)
    assert abandoned == burned, "each hole abandoned exactly once"
    print(f"\ncaught up {caught_up_after:.2f}s after the writes ended ({aborted} aborted appends)")


async def test_a_unit_of_work_slower_than_gap_timeout_is_delivered_never_skipped(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await store.count()
    log = CountingLog(store.log)
    subscription = CatchUpSubscription(log, gap_timeout=0.2, poll_interval=0.05)
    delivered: list[StoredEvent] = []

    async def follow() -> None:
        async for event in subscription:
            delivered.append(event)

    follower = asyncio.create_task(follow())
    slow = stream_id()
    async with MongoUnitOfWork(connection) as uow:
        (held,) = await store.append(slow, [make_event(slow, 1)], 0, uow=uow)
        later = [await append_one(store) for _ in range(5)]  # committed above the held one
        await eventually(
            lambda: log.tried_to_abandon(held.position or 0),
            "the follower trying to abandon the held position (its gap timeout passed)",
        )
        await uow.commit()

    async def all_delivered() -> bool:
        return len(delivered) == 6

    try:
        await eventually(all_delivered, "delivering the slow unit of work's event")
    finally:
        await subscription.aclose()
        await asyncio.wait_for(follower, 10)
    assert [e.position for e in delivered] == [held.position] + [e.position for e in later]
    assert delivered[0].event_id == held.event_id and subscription.gaps == []


async def test_an_append_whose_positions_were_abandoned_goes_again_or_fails_whole(
    mongo_uri: str, database_name: str, connection: MongoConnectionManager
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await store.count()
    admin = connection.client.admin
    subscription = store.subscribe(gap_timeout=0.1, poll_interval=0.05)
    delivered: list[StoredEvent] = []

    async def follow() -> None:
        async for event in subscription:
            delivered.append(event)

    follower = asyncio.create_task(follow())
    async with MongoConnectionManager(
        mongo_uri, database=database_name, appname="slow-writer"
    ) as slow_connection:
        slow_store = MongoEventStore(slow_connection)
        block = {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["insert"],
                "blockConnection": True,
                "blockTimeMS": 1500,
                "appName": "slow-writer",
            },
        }
        try:
            # Its own transaction: positions reserved, the insert held back by the server
            # until the follower has abandoned them; it goes again with fresh positions.
            await admin.command(block)
            own = stream_id()
            reserved_before = (await store.log.head()).position
            racing = asyncio.create_task(slow_store.append(own, [make_event(own, 1)], 0))
            await _positions_reserved_after(store, reserved_before)
            above = await append_one(store)
            (again,) = await racing
            # In a caller's unit of work the same race fails the whole unit (typed), and
            # run_unit_of_work runs it again.
            await admin.command(block)
            in_uow = stream_id()
            attempts = 0

            async def work(uow: Any) -> list[StoredEvent]:
                nonlocal attempts
                attempts += 1
                return await slow_store.append(in_uow, [make_event(in_uow, 1)], 0, uow=uow)

            reserved_before = (await store.log.head()).position
            uow_task = asyncio.create_task(run_unit_of_work(slow_connection, work))
            await _positions_reserved_after(store, reserved_before)
            await append_one(store)
            (in_unit,) = await uow_task
        finally:
            await admin.command({"configureFailPoint": "failCommand", "mode": "off"})

    head = (await store.log.head()).position

    async def caught_up() -> bool:
        return subscription.position >= head

    try:
        await eventually(caught_up, "following past the abandoned positions")
    finally:
        await subscription.aclose()
        await asyncio.wait_for(follower, 10)
    assert attempts == 2, "the unit of work went again once"
    positions = [e.position for e in delivered]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {again.event_id, in_unit.event_id, above.event_id} <= {e.event_id for e in delivered}
    assert again.position > above.position, "it went again with fresh positions"
    assert len(subscription.gaps) == 2, "the two abandoned positions, reported once each"
    for gap in subscription.gaps:
        doc = await store.events.find_one({"position": gap})
        assert doc is not None and doc.get("gap") is True, "a tombstone, not an event"
    assert await store.count() == len(delivered)


async def test_positions_abandoned_error_is_typed_and_retryable(
    connection: MongoConnectionManager,
) -> None:
    # The error a caller's unit of work meets, raised directly by a hand-made race: the
    # position its append reserved already holds a tombstone.
    store = MongoEventStore(connection, positions="preallocated")
    await store.count()
    head = (await store.log.head()).position
    await store.log.abandon([head + 1])  # the next position to be handed out
    aggregate = stream_id()
    with pytest.raises(PositionsAbandonedError, match="permanent gap"):
        async with MongoUnitOfWork(connection) as uow:
            await store.append(aggregate, [make_event(aggregate, 1)], 0, uow=uow)
            await uow.commit()
    assert await store.read_stream(aggregate) == []
    (stored,) = await store.append(aggregate, [make_event(aggregate, 1)], 0)
    assert stored.position == head + 2


async def _positions_reserved_after(store: MongoEventStore, head: int) -> None:
    """Wait until a writer has taken positions above ``head`` (its insert not yet done)."""

    async def reserved() -> bool:
        return (await store.log.head()).position > head

    await eventually(reserved, "the slow writer reserving its positions")


# -- the strategy is the store's -----------------------------------------------------------


async def test_a_default_built_reader_takes_the_strategy_from_the_store(
    connection: MongoConnectionManager,
) -> None:
    writer = MongoEventStore(connection, positions="preallocated")
    await append_one(writer)
    reader = MongoEventStore(connection)  # built with the defaults, as the CLI does
    await reader.count()
    assert reader.position_strategy == "preallocated"
    with pytest.raises(ConfigurationError, match=r"transactional.*preallocated"):
        await MongoEventStore(connection, positions="transactional").count()

    slow = stream_id()
    async with MongoUnitOfWork(connection) as uow:
        (held,) = await writer.append(slow, [make_event(slow, 1)], 0, uow=uow)
        above = await append_one(writer)
        reader_log = CountingLog(reader.log)
        reading = asyncio.create_task(CatchUpSubscription(reader_log, live=False).to_list())
        framing = asyncio.create_task(read_frame(reader, progress=False))
        await eventually(
            lambda: reader_log.times_read(held.position or 0) >= 3,
            "the reader looking at the held position again",
        )
        assert not reading.done(), "a default-built reader waits for the held position"
        await uow.commit()
    events = await asyncio.wait_for(reading, STALL)
    assert [e.position for e in events][-2:] == [held.position, above.position]
    frame = await asyncio.wait_for(framing, STALL)
    assert str(held.event_id) in set(frame.event_id)


async def test_changing_the_strategy_is_a_migration_readers_survive(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await append_one(store)
    slow = stream_id()
    async with MongoUnitOfWork(connection) as uow:
        (held,) = await store.append(slow, [make_event(slow, 1)], 0, uow=uow)
        other = MongoEventStore(connection)
        assert await other.change_position_strategy("transactional")
        assert not await other.change_position_strategy("transactional")
        after = await append_one(store)  # the running store follows the migration
        assert store.position_strategy == "transactional"
        assert after.position == held.position + 1
        other_log = CountingLog(other.log)
        reading = asyncio.create_task(CatchUpSubscription(other_log, live=False).to_list())
        await eventually(
            lambda: other_log.times_read(held.position or 0) >= 3,
            "the reader looking at the held position again",
        )
        assert not reading.done(), "positions taken before the migration are still looked at"
        await uow.commit()
    events = await asyncio.wait_for(reading, STALL)
    assert [e.event_id for e in events][-2:] == [held.event_id, after.event_id]
    head = await store.log.head()
    assert head.settled_after == held.position and head.strategy == "transactional"
    assert await store.change_position_strategy("preallocated")
    assert (await store.log.head()).settled_after == (await store.log.head()).position
    with pytest.raises(ConfigurationError):
        await store.change_position_strategy("sometimes")  # type: ignore[arg-type]


# -- crash takeover ------------------------------------------------------------------------


def _child(mongo_uri: str, database_name: str, batch: int, seconds: float) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), mongo_uri, database_name, str(batch), str(seconds)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


KILLS = 6
"""Children killed one after the other (each mid-batch most of the time); the takeover's
speed is measured in benchmarks/ (test_bench_followers.py)."""


@pytest.mark.slow
async def test_repeated_sigkills_each_replacement_takes_over_and_nothing_is_applied_twice(
    connection: MongoConnectionManager,
    tx_store: MongoEventStore,
    mongo_uri: str,
    database_name: str,
) -> None:
    rng = random.Random(4)
    for _ in range(100):
        aggregate = stream_id()
        await tx_store.append(aggregate, [make_event(aggregate, v) for v in (1, 2, 3)], 0)
    checkpoints = Subscriber(tx_store, "counter", count_handler(tx_store)).checkpoints
    takeovers: list[float] = []
    killed_at: float | None = None
    for _ in range(KILLS):
        before = await checkpoints.position("counter")
        child = _child(mongo_uri, database_name, 2, 0.02)
        try:

            async def progressed(before: int = before) -> bool:
                return await checkpoints.position("counter") > before

            await eventually(progressed, "a replacement taking over from a killed subscriber")
            if killed_at is not None:
                takeovers.append(time.monotonic() - killed_at)
            # Killed mid-batch most of the time: the handler sleeps inside the transaction.
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        killed_at = time.monotonic()
        for _ in range(3):  # the log keeps growing between kills
            await append_one(tx_store)
    final = Subscriber(tx_store, "counter", count_handler(tx_store))
    await asyncio.wait_for(final.run_until_caught_up(), STALL)
    assert final.takeovers == 1, "the last killed child's lease was taken over"
    interrupted = await effects_of(connection)
    await connection.database["effects"].drop()
    await Subscriber(tx_store, "clean", count_handler(tx_store)).run_until_caught_up()
    assert await effects_of(connection) == interrupted, "an effect was lost or applied twice"
    assert sum(n for n, _, _ in interrupted.values()) == await tx_store.count()
    assert len(takeovers) == KILLS - 1
    print(f"\ntakeover after SIGKILL, seconds: {', '.join(f'{t:.1f}' for t in takeovers)}")


def count_handler(store: MongoEventStore) -> Any:
    async def handler(event: StoredEvent, uow: Any) -> None:
        await count_effect(store, event, uow)

    return handler


async def test_two_consumers_of_one_name_one_runs_the_other_stands_by_and_takes_over(
    tx_store: MongoEventStore, connection: MongoConnectionManager
) -> None:
    for _ in range(20):
        await append_one(tx_store)
    handler = count_handler(tx_store)
    first = Subscriber(tx_store, "pair", handler, batch_size=2, lease=1.0, poll_interval=0.05)
    second = Subscriber(tx_store, "pair", handler, batch_size=2, lease=1.0, poll_interval=0.05)
    first.start()

    async def first_caught_up() -> bool:
        return first.position == 20

    await eventually(first_caught_up, "the first consumer catching up")
    second.start()
    for _ in range(5):
        await append_one(tx_store)

    async def first_has_them() -> bool:
        return first.position == 25

    await eventually(first_has_them, "the running consumer handling new events")
    assert second.handled == 0 and second.running, "the second stands by"
    checkpoint = await first.checkpoints.get("pair")
    assert checkpoint is not None and checkpoint.owner == first.owner
    await first.stop()
    for _ in range(5):
        await append_one(tx_store)

    async def second_took_over() -> bool:
        return second.position == 30

    await eventually(second_took_over, "the standby taking over")
    await second.stop()
    assert first.handled + second.handled == 30
    effects = await effects_of(connection)
    assert sum(n for n, _, _ in effects.values()) == 30, "every event applied exactly once"
    with pytest.raises(EventlabError, match="another process"):
        # A run that ends does not wait forever for a live holder: it says who runs it.
        third = Subscriber(tx_store, "pair", handler, lease=0.5)
        fourth = Subscriber(tx_store, "pair", handler, lease=0.5)
        fourth.start()

        async def fourth_holds_it() -> bool:
            checkpoint = await fourth.checkpoints.get("pair")
            return checkpoint is not None and checkpoint.owner == fourth.owner

        await eventually(fourth_holds_it, "the fourth runner taking the free lease")
        try:
            await third.run_until_caught_up()
        finally:
            await fourth.stop()


# -- rebuilds readers never notice --------------------------------------------------------


@pytest.mark.slow
async def test_ten_rebuilds_while_readers_loop_never_show_an_empty_or_shrunken_model(
    connection: MongoConnectionManager,
) -> None:
    store = await orders_store(connection, 1200)
    projector = Projector(store, OrderTotals(), keep_retired=0.2)
    await projector.run_until_caught_up()
    whole = len(await projector.rows())
    live = projector.start()
    counts: dict[str, list[int]] = {}
    done = asyncio.Event()

    async def reader(number: int) -> None:
        # Each reader's own sequence: two readers' reads interleave in any order.
        rows, frames = (
            counts.setdefault(f"rows {number}", []),
            counts.setdefault(f"frame {number}", []),
        )
        while not done.is_set():
            rows.append(len(await projector.rows()))
            frames.append(len(await projector.frame()))

    async def writer() -> None:
        aggregates = AggregateStore(store)
        for order in fresh_orders(40, 77, "during"):
            await aggregates.save(order)
            await asyncio.sleep(0.02)

    reading = [asyncio.create_task(reader(n)) for n in range(2)]
    writing = asyncio.create_task(writer())
    generations = []
    for _ in range(10):
        generations.append((await projector.rebuild()).generation)
    await writing

    async def caught_up() -> bool:
        return (await projector.status()).behind == 0

    await eventually(caught_up, "the live projector following the last rebuild")
    done.set()
    await asyncio.gather(*reading)
    await projector.stop()
    assert live.done() and generations == sorted(set(generations)) and len(generations) == 10
    assert all(counts.values()), "every reader read"
    for name, seen in counts.items():
        assert min(seen) >= whole, f"{name}: an empty or half-built read model was read"
        assert seen == sorted(seen), f"{name}: the read model shrank under a reader"
    clean = replay_projection(OrderTotals(), await store.read_all().to_list()).rows.rows
    assert rows_of(await projector.rows()) == clean and len(clean) == whole + 40


async def test_two_concurrent_rebuilds_leave_one_live_read_model(
    connection: MongoConnectionManager,
) -> None:
    store = await orders_store(connection)
    first, second = Projector(store, OrderTotals()), Projector(store, OrderTotals())
    await first.run_until_caught_up()
    outcomes = await asyncio.gather(first.rebuild(), second.rebuild(), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    statuses = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(statuses) == 1 and len(errors) == 1, outcomes
    assert isinstance(errors[0], RebuildInProgressError)
    live = await first.status()
    assert live.generation == statuses[0].generation == 2
    names = await connection.database.list_collection_names()
    assert live.collection in names
    clean = replay_projection(OrderTotals(), await store.read_all().to_list()).rows.rows
    assert rows_of(await second.rows()) == clean
    again = await second.rebuild()  # the claim was released: the next rebuild runs
    assert again.generation == 3


# -- filters read what they select --------------------------------------------------------


class Replies(monitoring.CommandListener):
    """Every document the server sent back for ``find`` and ``getMore``."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("find", "getMore"):
            cursor = event.reply.get("cursor", {})
            self.documents += cursor.get("firstBatch", []) + cursor.get("nextBatch", [])

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_filtered_followers_never_read_the_payloads_they_skip(
    mongo_uri: str, database_name: str, positions: str
) -> None:
    replies = Replies()
    async with MongoConnectionManager(
        mongo_uri, database=database_name, event_listeners=[replies]
    ) as connection:
        store = MongoEventStore(connection, positions=positions)  # type: ignore[arg-type]
        for n in range(30):
            aggregate = stream_id()
            kind = "Wanted" if n % 10 == 0 else "Skipped"
            await store.append(aggregate, [make_event(aggregate, 1, kind)], 0)
        replies.documents.clear()
        read = await store.read_all(event_types=["Wanted"], page_size=7).to_list()
        assert [e.event_type for e in read] == ["Wanted"] * 3
        skipped = [d for d in replies.documents if d.get("event_type") == "Skipped"]
        assert skipped == [] or all("payload" not in d for d in skipped)
        if positions == "preallocated":
            assert len(skipped) == 27, "contiguity needs every position of the range"
        subscription = store.subscribe(event_types=["Wanted"], page_size=7)
        seen = []
        async for event in subscription:
            seen.append(event)
            if len(seen) == 3:
                break
        assert [e.event_id for e in seen] == [e.event_id for e in read]
