"""Followers on a real server: where ``start="end"`` starts on a ``preallocated`` store (never
past a position that may still commit), and which server errors a live follower waits out and
which it raises (one-shot and persistent fail points, race points)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eventlab import (
    CatchUpSubscription,
    MongoConnectionManager,
    MongoEventStore,
    MongoUnitOfWork,
    NotAuthorizedError,
    StoredEvent,
    Subscriber,
)
from eventlab._core import races as _races
from eventlab._core.tasks import within
from eventlab.testing import eventually

from .conftest import make_event, stream_id

STALL = 60.0
"""Seconds after which a follower that has not done what it must is stalled (a bound on a
stall, not a latency: each step here takes a fraction of a second)."""


@contextlib.asynccontextmanager
async def failing(
    connection: MongoConnectionManager, commands: list[str], times: int, **data: Any
) -> AsyncIterator[None]:
    await connection.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": times},
            "data": {"failCommands": commands, **data},
        }
    )
    try:
        yield
    finally:
        await connection.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def append(store: MongoEventStore, uow: Any = None) -> StoredEvent:
    sid = stream_id()
    (stored,) = await store.append(sid, [make_event(sid, 1)], 0, uow=uow)
    return stored


async def follow_until(subscription: CatchUpSubscription, position: int) -> list[int]:
    """Positions the subscription hands out, up to and including ``position``."""
    seen: list[int] = []
    async with subscription:
        async for event in subscription:
            seen.append(event.position or 0)
            if (event.position or 0) >= position:
                break
    return seen


# -- start="end" never passes a position that may still commit --------------------------------


@pytest.mark.parametrize("consumer", ["subscribe", "Subscriber"])
async def test_end_starts_below_a_position_an_open_unit_of_work_holds(
    connection: MongoConnectionManager, consumer: str
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await append(store)
    unit = MongoUnitOfWork(connection)
    await unit.__aenter__()
    held = await append(store, uow=unit)  # inserted, not committed: a hole to readers
    above = await append(store)  # committed above it: the head is past the held position
    seen: list[int] = []
    if consumer == "subscribe":
        subscription = store.subscribe(start="end", poll_interval=0.05)
        reader = asyncio.ensure_future(follow_until(subscription, above.position or 0))
        await subscription.ready.wait()
    else:

        async def remember(event: StoredEvent, uow: Any) -> None:
            seen.append(event.position or 0)

        subscriber = Subscriber(store, "late", remember, start="end", poll_interval=0.05)
        subscriber.start()
        await eventually(lambda: subscriber.position is not None, "the subscriber starting")
    await unit.commit()  # the held position commits after the follower started at the end
    await unit.__aexit__(None, None, None)
    if consumer == "subscribe":
        seen = await within(reader, STALL)
    else:
        await eventually(lambda: above.position in seen, "the subscriber reaching the head")
        await subscriber.stop()
    assert held.position in seen, f"position {held.position} committed late and was skipped"
    assert seen == sorted(set(seen)), "in order, once"


async def test_end_abandons_a_taken_position_and_its_append_goes_again(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await append(store)
    async with _races.paused_at("append.positions_taken") as pause:
        late = asyncio.ensure_future(append(store))  # takes its position, then waits here
        await pause.reached.wait()
        subscription = store.subscribe(start="end", poll_interval=0.05, gap_timeout=0)
        async with subscription:
            reader = aiter(subscription)
            first = asyncio.ensure_future(anext(reader))
            await subscription.ready.wait()  # the hole was settled (abandoned) to start
            pause.resume()
            stored = await within(late, STALL)  # went again, at a fresh position
            event = await within(first, STALL)
    assert event.event_id == stored.event_id, "the append that lost its position is delivered"
    tombstones = await store.events.count_documents({"gap": True})
    assert tombstones == 1 and (stored.position or 0) > 2


# -- which errors a live follower waits out ----------------------------------------------------


async def test_a_live_subscription_raises_an_error_that_will_not_go_away(
    tx_store: MongoEventStore,
) -> None:
    await append(tx_store)
    subscription = tx_store.subscribe(wake="poll", poll_interval=0.01)
    async with failing(tx_store.connection, ["find"], 1000, errorCode=13):
        with pytest.raises(NotAuthorizedError) as info:
            await within(_drain(subscription), STALL)
    assert info.value.code == 13 and subscription.closed


async def _drain(subscription: CatchUpSubscription) -> None:
    async for _ in subscription:
        pass


async def test_a_live_subscription_waits_out_an_election(tx_store: MongoEventStore) -> None:
    first = await append(tx_store)
    subscription = tx_store.subscribe(wake="poll", poll_interval=0.01)
    # InterruptedDueToReplStateChange on three reads in a row (the driver retries one).
    async with failing(tx_store.connection, ["find"], 3, errorCode=11602):
        seen = await within(follow_until(subscription, first.position or 0), STALL)
    assert seen == [first.position]


async def test_a_follower_that_may_not_write_tombstones_says_so(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await append(store)
    with contextlib.suppress(RuntimeError):
        async with MongoUnitOfWork(connection) as unit:
            await append(store, uow=unit)
            raise RuntimeError("the unit aborts: its position is a hole for good")
    await append(store)
    subscription = store.subscribe(gap_timeout=0, poll_interval=0.01, wake="poll")
    async with failing(connection, ["insert"], 1000, errorCode=13):
        with pytest.raises(NotAuthorizedError, match="tombstones") as info:
            await within(_drain(subscription), STALL)
    assert info.value.code == 13


async def test_a_standby_gets_over_a_lost_connection(tx_store: MongoEventStore) -> None:
    await tx_store.count()
    checkpoints = tx_store.backend.checkpoints()
    assert (await checkpoints.claim("standby", "elsewhere", lease=60)).granted
    handled: list[int] = []

    async def remember(event: StoredEvent, uow: Any) -> None:
        handled.append(event.position or 0)

    standby = Subscriber(tx_store, "standby", remember, lease=0.6, poll_interval=0.05)
    standby.start()

    async def standing_by() -> bool:
        return (await standby.health()).state == "standing_by"

    await eventually(standing_by, "the runner standing by")
    # The lease's findAndModify loses its connection (twice: the driver retries it once).
    async with failing(tx_store.connection, ["findAndModify"], 2, closeConnection=True):

        async def failed_once() -> bool:
            return (await standby.health()).last_error is not None

        await eventually(failed_once, "a claim failing")
    assert standby.running, "a lost connection does not end a live run"
    await checkpoints.release("standby", "elsewhere")
    event = await append(tx_store)
    await eventually(lambda: handled == [event.position], "the standby taking over")
    health = await standby.health()
    assert "ConnectionFailedError" in (health.last_error or "") and health.state == "following"
    await standby.stop()
