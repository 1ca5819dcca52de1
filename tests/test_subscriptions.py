"""Catch-up subscriptions and checkpoints: every event exactly once, in position order, under
concurrent writers, late commits, aborted appends, cancellations, kills and server restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from eventlab import (
    CatchUpSubscription,
    CheckpointConflictError,
    ConfigurationError,
    EventlabError,
    EventRegistry,
    MongoCheckpointStore,
    MongoConnectionManager,
    MongoEventStore,
    MongoUnitOfWork,
    StoredEvent,
    Subscriber,
    SubscriptionError,
)
from eventlab.embedded import EmbeddedMongo
from eventlab.testing import eventually

from .conftest import make_event, stream_id

CHILD = Path(__file__).with_name("_subscriber_child.py")


async def append_one(store: MongoEventStore, aggregate: str | None = None) -> StoredEvent:
    aggregate = aggregate or stream_id()
    version = await store.get_current_version(aggregate)
    (stored,) = await store.append(aggregate, [make_event(aggregate, version + 1)], version)
    return stored


@contextlib.asynccontextmanager
async def report_if_stalled(connection: MongoConnectionManager, name: str, *, after: float) -> Any:
    """Prints what a consumer is doing when it has not finished ``after`` seconds in: every
    task's stack, its lease and checkpoint, the server's operations (a diagnosis, not a bound:
    the test's own timeout decides)."""

    async def report() -> None:
        await asyncio.sleep(after)
        print(f"--- {name}: still running after {after} s ---", file=sys.stderr)
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
        database = connection.database
        print(
            "lease", await database["checkpoints_leases"].find_one({"_id": name}), file=sys.stderr
        )
        print("checkpoint", await database["checkpoints"].find_one({"_id": name}), file=sys.stderr)
        with contextlib.suppress(Exception):
            ops = await connection.client.admin.command("currentOp", {"$all": True})
            print("currentOp", ops, file=sys.stderr)

    watcher = asyncio.get_running_loop().create_task(report())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def collect(subscription: CatchUpSubscription, count: int, seconds: float) -> list[int]:
    seen: list[int] = []

    async def read() -> None:
        async for event in subscription:
            assert event.position is not None
            seen.append(event.position)
            if len(seen) >= count:
                break

    await asyncio.wait_for(read(), seconds)
    return seen


@pytest.mark.slow
async def test_eight_writers_three_subscribers_see_every_event_once_in_order(
    tx_store: MongoEventStore,
) -> None:
    writers, appends = 8, 40
    await tx_store.count()
    acknowledged: list[int] = []

    async def writer(n: int) -> None:
        aggregate = stream_id()
        for version in range(1, appends + 1):
            # Batches of one or two events, so positions are taken in varying steps.
            events = [make_event(aggregate, version)]
            (stored,) = await tx_store.append(aggregate, events, version - 1)
            acknowledged.append(stored.position or 0)

    subscriptions = [tx_store.subscribe(page_size=size) for size in (7, 50, 500)]
    readers = [asyncio.create_task(collect(s, writers * appends, 120)) for s in subscriptions]
    for subscription in subscriptions:  # live before the writers start
        await asyncio.wait_for(subscription.ready.wait(), 30)
    await asyncio.gather(*(writer(n) for n in range(writers)))
    seen = await asyncio.gather(*readers)
    assert len(acknowledged) == writers * appends
    for positions in seen:
        assert positions == sorted(acknowledged), "an event was missed, repeated or reordered"
    assert all(s.closed for s in subscriptions)


@pytest.mark.slow
async def test_preallocated_reader_waits_for_late_commits_and_reports_each_gap_once(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated", transaction_time_budget=2)
    await store.count()
    admin = connection.client.admin
    rng = random.Random(13)
    gaps_reported: list[list[int]] = []
    subscription = CatchUpSubscription(
        store.log, page_size=20, gap_timeout=1.5, poll_interval=0.05, on_gap=gaps_reported.append
    )
    delivered: list[int] = []
    acknowledged: list[int] = []

    async def follow() -> None:
        async for event in subscription:
            delivered.append(event.position or 0)

    follower = asyncio.create_task(follow())

    async def late_writer() -> None:
        # Positions are reserved before the transaction; holding it open lets later
        # positions commit first.
        for _ in range(4):
            aggregate = stream_id()
            try:
                async with MongoUnitOfWork(connection) as uow:
                    stored = await store.append(aggregate, [make_event(aggregate, 1)], 0, uow=uow)
                    await asyncio.sleep(rng.uniform(0.2, 0.8))
                    await uow.commit()
            except EventlabError:  # the fail point is the server's: any writer may meet it
                continue
            acknowledged.extend(e.position or 0 for e in stored)

    async def aborting_writer() -> None:
        for _ in range(4):
            aggregate = stream_id()
            with contextlib.suppress(EventlabError):
                async with MongoUnitOfWork(connection) as uow:  # left without commit: aborted
                    await store.append(aggregate, [make_event(aggregate, 1)], 0, uow=uow)
            await asyncio.sleep(rng.uniform(0.05, 0.3))

    async def faulty_writer() -> None:
        for _ in range(3):
            await admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": {"failCommands": ["insert"], "errorCode": 2},
                }
            )
            aggregate = stream_id()
            try:
                stored = await store.append(aggregate, [make_event(aggregate, 1)], 0)
                acknowledged.extend(e.position or 0 for e in stored)
            except EventlabError:
                pass
            await asyncio.sleep(0.1)

    async def steady_writer() -> None:
        for _ in range(30):
            with contextlib.suppress(EventlabError):
                acknowledged.append((await append_one(store)).position or 0)
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(late_writer(), aborting_writer(), faulty_writer(), steady_writer())
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        head = (await store.log.head()).position
        stored_positions = sorted(e.position or 0 for e in await store.read_all().to_list())
        await eventually(lambda: subscription.position >= head, "following to the head")
    finally:
        await subscription.aclose()
        await asyncio.wait_for(follower, 10)
    assert sorted(acknowledged) == [p for p in stored_positions if p in set(acknowledged)]
    assert delivered == stored_positions, "a committed event was skipped or reordered"
    expected_gaps = sorted(set(range(1, head + 1)) - set(stored_positions))
    assert len(expected_gaps) >= 4, "the scenario burned positions"
    flat = [p for gap in gaps_reported for p in gap]
    assert flat == expected_gaps == subscription.gaps, "each permanent gap reported once"


async def test_transactional_store_with_restored_holes_is_passed_at_once(
    tx_store: MongoEventStore,
) -> None:
    events = [make_event(stream_id(), 1) for _ in range(3)]
    await tx_store.restore([replace(e, position=p) for p, e in zip((2, 5, 6), events, strict=True)])
    # An hour's gap timeout: only a store that knows its holes are settled reads this at all.
    subscription = tx_store.read_all(gap_timeout=3600)
    events = await asyncio.wait_for(subscription.to_list(), 60)
    assert [e.position for e in events] == [2, 5, 6]
    assert subscription.gaps == [1, 3, 4]


async def test_filters_start_at_the_end_and_backpressure(tx_store: MongoEventStore) -> None:
    for _ in range(5):
        await append_one(tx_store)
    aggregate = stream_id()
    await tx_store.append(aggregate, [make_event(aggregate, 1, "Shipped")], 0)
    only_shipped = tx_store.read_all(event_types=["Shipped"])
    assert [e.event_type async for e in only_shipped] == ["Shipped"]
    assert only_shipped.position == 6  # it moved over the other events too
    assert [e async for e in tx_store.read_all(aggregate_types=["Other"])] == []

    from_end = tx_store.subscribe(start="end", wake="poll", poll_interval=0.05)
    reader = asyncio.create_task(collect(from_end, 1, 10))
    await asyncio.wait_for(from_end.ready.wait(), 30)
    new = await append_one(tx_store)
    assert await reader == [new.position]

    # A consumer that does not read holds the subscription at one page plus one read ahead.
    for _ in range(30):
        await append_one(tx_store)
    slow = tx_store.read_all(page_size=5)
    iterator = aqiter(slow)
    first = await iterator.__anext__()
    await asyncio.sleep(0.3)
    assert first.position == 1 and slow.position <= 5
    await iterator.aclose()
    assert slow.closed


def aqiter(subscription: CatchUpSubscription) -> Any:
    return subscription.__aiter__()


async def test_the_change_stream_wakes_a_live_subscription(tx_store: MongoEventStore) -> None:
    """With an hour between polls, only a wake-up delivers (its latency: benchmarks/)."""
    await append_one(tx_store)
    async with tx_store.subscribe(start="end", poll_interval=3600) as subscription:
        iterator = subscription.__aiter__()
        for _ in range(5):
            waiting = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait_for(subscription.ready.wait(), 30)
            new = await append_one(tx_store)
            assert (await asyncio.wait_for(waiting, 60)).event_id == new.event_id
        assert subscription.watching, "the embedded server has change streams"


async def test_polling_delivers_without_a_change_stream(tx_store: MongoEventStore) -> None:
    async with tx_store.subscribe(start="end", wake="poll", poll_interval=0.05) as subscription:
        iterator = subscription.__aiter__()
        waiting = asyncio.ensure_future(iterator.__anext__())
        await asyncio.wait_for(subscription.ready.wait(), 30)
        new = await append_one(tx_store)
        assert (await asyncio.wait_for(waiting, 60)).event_id == new.event_id
        assert not subscription.watching


async def test_bad_options_are_typed_errors(tx_store: MongoEventStore) -> None:
    for options in ({"wake": "push"}, {"poll_interval": 0}, {"gap_timeout": -1}, {"start": "x"}):
        with pytest.raises(ConfigurationError):
            tx_store.subscribe(**options)
    subscription = tx_store.read_all()
    assert [e async for e in subscription] == []
    with pytest.raises(SubscriptionError):
        [e async for e in subscription]
    with pytest.raises(ConfigurationError):
        Subscriber(tx_store, "x", handle_nothing, mode="twice")  # type: ignore[arg-type]


async def handle_nothing(event: StoredEvent, *args: Any) -> None:
    return None


async def test_checkpoints_are_conditional(connection: MongoConnectionManager) -> None:
    checkpoints = MongoCheckpointStore(connection)
    assert await checkpoints.get("p") is None and await checkpoints.position("p") == 0
    await checkpoints.save("p", 5, expected=0)
    await checkpoints.save("p", 9, expected=5, gaps=[6])
    with pytest.raises(CheckpointConflictError):
        await checkpoints.save("p", 12, expected=5)
    with pytest.raises(CheckpointConflictError):
        await checkpoints.save("p", 12, expected=0)
    await checkpoints.save("p", 3)  # at-least-once saves only move forward
    stored = await checkpoints.get("p")
    assert stored is not None and (stored.position, stored.gaps) == (9, (6,))
    assert [c.name for c in await checkpoints.all()] == ["p"]
    assert await checkpoints.delete("p") and not await checkpoints.delete("p")


async def count_effect(store: MongoEventStore, event: StoredEvent, uow: Any) -> None:
    effects = store.connection.database["effects"]
    await effects.update_one(
        {"_id": event.aggregate_id},
        {"$inc": {"events": 1, "versions": event.version}, "$push": {"positions": event.position}},
        upsert=True,
        session=uow.session,
    )


async def effects_of(connection: MongoConnectionManager) -> dict[str, Any]:
    docs = await connection.database["effects"].find({}).to_list(None)
    return {d["_id"]: (d["events"], d["versions"], d["positions"]) for d in docs}


@pytest.mark.slow
async def test_exactly_once_effects_survive_cancellations_and_kills(
    connection: MongoConnectionManager,
    tx_store: MongoEventStore,
    mongo_uri: str,
    database_name: str,
) -> None:
    rng = random.Random(20)
    for _ in range(60):
        aggregate = stream_id()
        await tx_store.append(aggregate, [make_event(aggregate, v) for v in (1, 2, 3)], 0)
    total = await tx_store.count()

    async def handler(event: StoredEvent, uow: Any) -> None:
        await count_effect(tx_store, event, uow)
        await asyncio.sleep(0.002)

    interruptions = 0
    for round_number in range(20):
        if round_number % 10 == 9:  # a whole process killed with SIGKILL at a random moment
            child = subprocess.Popen(
                [sys.executable, str(CHILD), mongo_uri, database_name],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
            )
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        else:  # a task cancelled at a random moment
            subscriber = Subscriber(tx_store, "counter", handler, batch_size=rng.choice([1, 7]))
            task = subscriber.start()
            await asyncio.sleep(rng.uniform(0.01, 0.3))
            task.cancel()
            await asyncio.wait({task})
        interruptions += 1
        # Random extra writes between interruptions: the log keeps growing.
        await append_one(tx_store)
        total += 1
    final = Subscriber(tx_store, "counter", handler)
    async with report_if_stalled(connection, "counter", after=60):
        await final.run_until_caught_up()
    assert interruptions == 20
    interrupted = await effects_of(connection)

    # One clean pass over the same log, into a clean collection.
    await connection.database["effects"].drop()
    clean = Subscriber(tx_store, "clean", handler)
    await clean.run_until_caught_up()
    assert await effects_of(connection) == interrupted
    assert sum(n for n, _, _ in interrupted.values()) == total
    assert await final.lag() == 0


async def test_two_instances_of_one_subscriber_cannot_both_apply(
    tx_store: MongoEventStore,
) -> None:
    for _ in range(5):
        await append_one(tx_store)
    first = Subscriber(tx_store, "one", handle_nothing)
    await first.run_until_caught_up()
    second = Subscriber(tx_store, "one", handle_nothing)
    batch_events = await tx_store.read_all().to_list()
    from eventlab import Batch

    async with tx_store.connection.client.start_session() as session:
        with pytest.raises(CheckpointConflictError):
            # A second instance that read the checkpoint (0) before the first moved it.
            await second._delivery.apply(Batch(tuple(batch_events), 5), 0, session, 5)


async def test_at_least_once_subscriber_and_its_stop(tx_store: MongoEventStore) -> None:
    seen: list[int] = []

    async def remember(event: StoredEvent) -> None:
        seen.append(event.position or 0)

    subscriber = Subscriber(
        tx_store, "mailer", remember, mode="at_least_once", wake="poll", poll_interval=0.05
    )
    subscriber.start()
    for _ in range(10):
        await append_one(tx_store)
    await eventually(lambda: len(seen) >= 10, "the subscriber handling ten events")
    await subscriber.stop()
    assert seen == list(range(1, 11)) and not subscriber.running
    assert await subscriber.checkpoints.position("mailer") == 10


@pytest.mark.slow
async def test_subscription_survives_a_server_restart(tmp_path: Path) -> None:
    server = EmbeddedMongo(storage_path=tmp_path / "data")
    await server.start_async()
    port = server.port
    try:
        async with MongoConnectionManager(server.uri, database="restart") as connection:
            store = MongoEventStore(connection)
            for _ in range(5):
                await append_one(store)

            async def handler(event: StoredEvent, uow: Any) -> None:
                await count_effect(store, event, uow)

            subscriber = Subscriber(store, "follower", handler, poll_interval=0.1)
            subscriber.start()
            await eventually(lambda: subscriber.position == 5, "the subscriber catching up")
            server.kill()  # the server dies underneath the subscriber
            server = EmbeddedMongo(storage_path=tmp_path / "data", port=port)
            await server.start_async()
            for _ in range(5):
                await append_one(store)
            await eventually(lambda: subscriber.position == 10, "following after the restart")
            await subscriber.stop()
            effects = await effects_of(connection)
            assert sum(n for n, _, _ in effects.values()) == 10, "lost or repeated effects"
            assert subscriber.position == 10
    finally:
        server.stop()


async def test_resources_are_closed_on_every_exit_path(tx_store: MongoEventStore) -> None:
    for _ in range(3):
        await append_one(tx_store)
    before = set(asyncio.all_tasks())

    async def leave(how: str) -> CatchUpSubscription:
        subscription = tx_store.subscribe(page_size=1)
        try:
            async for _ in subscription:
                if how == "break":
                    break
                if how == "raise":
                    raise RuntimeError("the consumer failed")
        except RuntimeError:
            pass
        return subscription

    for how in ("break", "raise"):
        subscription = await leave(how)
        # The iterator left behind is closed by asyncio's async-generator finalizer as soon as
        # it is collected (at once in CPython); `async with` closes it deterministically.
        await eventually(lambda s=subscription: s.closed, "the finalizer closing the iterator")
        assert not subscription.watching

    cancelled = tx_store.subscribe()
    task = asyncio.create_task(collect(cancelled, 10**6, 60))
    await asyncio.wait_for(cancelled.ready.wait(), 30)
    assert cancelled.watching
    task.cancel()
    await asyncio.wait({task})
    assert cancelled.closed and not cancelled.watching

    async with tx_store.subscribe() as closed_by_context:
        iterator = closed_by_context.__aiter__()
        await iterator.__anext__()
    assert closed_by_context.closed
    await iterator.aclose()

    def leaked() -> set[asyncio.Task[Any]]:
        return {
            t
            for t in set(asyncio.all_tasks()) - before
            if not t.done() and _module_of(t).startswith("eventlab")
        }

    await eventually(lambda: not leaked(), "the subscriptions' tasks ending")
    assert leaked() == set()


def _module_of(task: asyncio.Task[Any]) -> str:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


async def test_wakeups_left_open_end_when_their_client_closes(mongo_uri: str) -> None:
    """A follower abandoned without being closed (an ``async for`` left by ``break`` keeps its
    generator open until it is collected) must not hold the event loop once its client is
    closed: its watcher ends instead of spinning on a dead change stream."""
    connection = MongoConnectionManager(mongo_uri, database=f"t_{os.getpid()}_abandoned")
    await connection.connect()
    store = MongoEventStore(connection, registry=EventRegistry())
    wakeups = store.log.wakeups()
    await wakeups.__aenter__()
    watcher = wakeups._task
    assert watcher is not None and wakeups.watching
    await connection.disconnect()
    await eventually(watcher.done, "the watcher of a closed client ends")
    assert not wakeups.watching and watcher.exception() is None
    await wakeups.__aexit__(None, None, None)
