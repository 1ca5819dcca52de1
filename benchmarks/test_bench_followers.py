"""Suite 8, followers: what filters save, how long holes and crashes cost a follower.

* a subscription over 1 of 10 event types catching up over the store vs the same subscription
  unfiltered, with and without the opt-in ``event_type_position`` index (paired);
* a burst of aborted preallocated appends: how long after the writes end a follower has
  everything (budget: ``gap_timeout`` + 5 s);
* an exactly-once subscriber killed with SIGKILL: how long until a replacement makes progress
  (budget: 5 s);
* a live subscription: from an append's call to its delivery, woken by the change stream
  (budget: 50 ms, median).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from eventlab import (
    EventlabError,
    EventRegistry,
    MongoConnectionManager,
    MongoEventStore,
    MongoUnitOfWork,
    StoredEvent,
    Subscriber,
)

from ._paired import assert_ratio, paired
from ._verdicts import decide
from .budgets import FOLLOWER_BUDGETS_SECONDS
from .conftest import make_events

Run = Callable[[Awaitable[Any]], Any]
TYPES = 10
CHILD = Path(__file__).resolve().parent.parent / "tests" / "_subscriber_child.py"


@pytest.fixture(scope="module", params=[False, True], ids=["no-index", "type-index"])
def typed_store(
    request: pytest.FixtureRequest,
    store_size: int,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Run,
) -> MongoEventStore:
    """``store_size`` events of ten types, one in ten of the type the filter selects."""
    store = MongoEventStore(
        connection,
        registry=registry,
        events_collection=f"bench_types_{store_size}_{int(request.param)}",
        query_indexes=request.param,
    )
    base = make_events(1)[0]
    events: list[StoredEvent] = []
    for position in range(1, store_size + 1):
        sid = f"typed-{position // 50}"
        stored = registry.to_stored(base, aggregate_id=sid, aggregate_type="Inventory", version=1)
        events.append(
            StoredEvent(
                event_id=uuid.uuid4(),
                event_type=f"Type{position % TYPES}",
                aggregate_id=sid,
                aggregate_type="Inventory",
                version=position % 50 + 1,
                payload=stored.payload,
                metadata=stored.metadata,
                occurred_at=stored.occurred_at,
                position=position,
                recorded_at=stored.occurred_at,
            )
        )
    run(store.restore(events, chunk_size=2000))
    return store


def test_filtered_subscription_catch_up(
    benchmark: Any, typed_store: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """One event type of ten vs every event: a filter reads what it selects."""

    async def follow(event_types: list[str] | None, wanted: int) -> int:
        seen = 0
        async with typed_store.subscribe(event_types=event_types, page_size=1000) as s:
            async for _ in s:
                seen += 1
                if seen == wanted:
                    break
        return seen

    indexed = typed_store._schema.query_indexes
    seen = paired(
        benchmark,
        name="filtered-catch-up" + ("-indexed" if indexed else ""),
        server=server_label,
        target=lambda: run(follow(["Type3"], store_size // TYPES)),
        baseline=lambda: run(follow(None, store_size)),
        rounds=3,
        warmup_rounds=1,
    )
    assert seen == store_size // TYPES
    info = benchmark.extra_info
    info["store_size"] = store_size
    info["filtered_seconds"] = round(info["median_ms"] / 1e3, 3)
    info["unfiltered_seconds"] = round(info["baseline_median_ms"] / 1e3, 3)
    assert_ratio(benchmark)


def _aborting_writers(store: MongoEventStore, writers: int, appends: int) -> Awaitable[int]:
    async def writer(n: int) -> int:
        aborted = 0
        for i in range(appends):
            aggregate = f"burst-{uuid.uuid4().hex}"
            event = make_events(1)
            if (i + n) % 4 == 0:  # a quarter of the appends take positions, then abort
                aborted += 1
                with contextlib.suppress(EventlabError):
                    async with MongoUnitOfWork(store.connection) as uow:
                        await store.append(aggregate, event, 0, uow=uow)
                continue
            await store.append(aggregate, event, 0)
        return aborted

    async def all_writers() -> int:
        return sum(await asyncio.gather(*(writer(n) for n in range(writers))))

    return all_writers()


def test_holes_cost_one_gap_timeout(
    benchmark: Any, connection: MongoConnectionManager, registry: EventRegistry, run: Run
) -> None:
    """8 writers, a quarter of their appends aborted after taking positions: seconds from the
    end of the writes until a follower has passed every position (median of 3 runs)."""
    gap_timeout = 1.0
    delays: list[float] = []

    async def one_run() -> float:
        store = MongoEventStore(
            connection,
            registry=registry,
            positions="preallocated",
            events_collection=f"bench_holes_{uuid.uuid4().hex[:8]}",
        )
        await store.count()
        subscription = store.subscribe(gap_timeout=gap_timeout, poll_interval=0.1)

        async def follow() -> None:
            async for _ in subscription:
                pass

        follower = asyncio.create_task(follow())
        await _aborting_writers(store, 8, 60)
        ended = time.perf_counter()
        head = (await store.log.head()).position
        while subscription.position < head:
            await asyncio.sleep(0.01)
        delay = time.perf_counter() - ended
        await subscription.aclose()
        await follower
        return delay

    def measure() -> None:
        delays.append(run(one_run()))

    benchmark.pedantic(measure, rounds=3, warmup_rounds=0)
    median = statistics.median(delays)
    budget = gap_timeout + FOLLOWER_BUDGETS_SECONDS["holes-after-writes"]
    benchmark.extra_info.update(gap_timeout=gap_timeout, delays=[round(d, 2) for d in delays])
    decide(
        benchmark,
        "a follower past 60 aborted appends' holes, after the writes",
        limit=budget,
        measured=median,
        unit="s",
    )


def test_takeover_after_sigkill(
    benchmark: Any,
    bench_uri: str,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Run,
) -> None:
    """An exactly-once subscriber in a child process, SIGKILLed mid-batch; a standby in this
    process takes over: seconds from the kill to the standby's first committed batch."""
    database = connection.database_name
    store = MongoEventStore(connection, registry=registry, events_collection="domain_events")
    delays: list[float] = []

    async def fill(count: int) -> None:
        for _ in range(count):
            aggregate = f"takeover-{uuid.uuid4().hex}"
            await store.append(aggregate, make_events(1), 0)

    async def one_run() -> float:
        await fill(30)
        child = subprocess.Popen(
            [sys.executable, str(CHILD), bench_uri, database, "2", "0.05"],
            env={**os.environ, "PYTHONPATH": str(CHILD.parent.parent)},
        )
        checkpoints = Subscriber(store, "counter", _ignore).checkpoints
        before = await checkpoints.position("counter")
        while await checkpoints.position("counter") <= before:
            await asyncio.sleep(0.02)
        effects = connection.database["effects"]

        async def count(event: StoredEvent, uow: Any) -> None:  # the child's own effect
            await effects.update_one(
                {"_id": event.aggregate_id},
                {"$inc": {"events": 1}},
                upsert=True,
                session=uow.session,
            )

        standby = Subscriber(store, "counter", count, batch_size=2)
        standby.start()
        await asyncio.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        child.wait(10)
        while standby.handled == 0:
            await asyncio.sleep(0.01)
        delay = time.perf_counter() - killed
        await standby.stop()
        return delay

    def measure() -> None:
        delays.append(run(one_run()))

    benchmark.pedantic(measure, rounds=3, warmup_rounds=0)
    median = statistics.median(delays)
    benchmark.extra_info.update(delays=[round(d, 2) for d in delays])
    decide(
        benchmark,
        "a standby's first batch after a SIGKILL",
        limit=FOLLOWER_BUDGETS_SECONDS["takeover-after-sigkill"],
        measured=median,
        unit="s",
    )


async def _ignore(event: StoredEvent, uow: Any) -> None:
    return None


def test_live_delivery_latency(
    benchmark: Any, connection: MongoConnectionManager, registry: EventRegistry, run: Run
) -> None:
    """Seconds from calling ``append`` to the event coming out of a live subscription that
    waits on the change stream (its poll interval is an hour: only a wake-up delivers)."""
    store = MongoEventStore(
        connection, registry=registry, events_collection=f"bench_live_{uuid.uuid4().hex[:8]}"
    )
    latencies: list[float] = []

    async def measure_all() -> bool:
        await store.count()
        async with store.subscribe(start="end", poll_interval=3600) as subscription:
            iterator = subscription.__aiter__()
            for _ in range(25):
                waiting = asyncio.ensure_future(iterator.__anext__())
                await asyncio.wait_for(subscription.ready.wait(), 30)
                await asyncio.sleep(0.01)  # the subscription is parked on its wake-up
                started = time.perf_counter()
                aggregate = f"live-{uuid.uuid4().hex}"
                await store.append(aggregate, make_events(1), 0)
                await asyncio.wait_for(waiting, 30)
                latencies.append(time.perf_counter() - started)
            return subscription.watching

    def measure() -> None:
        assert run(measure_all()), "the server offers change streams"

    benchmark.pedantic(measure, rounds=1, warmup_rounds=0)
    decide(
        benchmark,
        "live delivery, append to subscriber",
        limit=FOLLOWER_BUDGETS_SECONDS["live-delivery"] * 1e3,
        measured=statistics.median(latencies) * 1e3,
        unit="ms",
    )
