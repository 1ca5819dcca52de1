"""A writer in its own process, to be SIGKILLed by the tests and benchmarks (crashed writers).

usage: python _writer_child.py URI DATABASE COLLECTION MODE [ARGS...]

Every line it prints is flushed at once; the parent reads them as signals:

* ``hold``: a unit of work (``run_unit_of_work``) appends one event, prints
  ``HOLDING <position>`` and waits forever with its transaction open (the parent kills it).
* ``live ASYNC_SECONDS BLOCKING_SECONDS``: a unit of work (``run_unit_of_work``) appends one
  event, prints ``APPENDED <attempt>``, then sleeps: first ``await asyncio.sleep``, then
  ``time.sleep`` (the event loop blocked), and commits; prints ``COMMITTED <event id>``.
* ``random SEED [RACE_POINT]``: appends forever, on their own and in units of work of random
  duration, printing ``ACK <event id> ...`` once each is acknowledged (committed). With a race
  point, the first time it is reached the child prints ``AT <point>`` and waits forever there.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent, run_unit_of_work
from eventlab._core import races as races


def say(*words: object) -> None:
    print(*words, flush=True)


def event(aggregate_id: str, version: int) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Noted",
        aggregate_id=aggregate_id,
        aggregate_type="Note",
        version=version,
        payload={"n": version},
        metadata={},
        occurred_at=datetime.now(UTC),
    )


async def forever() -> None:
    await asyncio.Event().wait()


async def hold(connection: MongoConnectionManager, store: MongoEventStore) -> None:
    sid = f"held-{uuid.uuid4().hex}"

    async def work(uow: Any) -> None:
        (stored,) = await store.append(sid, [event(sid, 1)], 0, uow=uow)
        say("HOLDING", stored.position)
        await forever()

    await run_unit_of_work(connection, work)


async def live(
    connection: MongoConnectionManager, store: MongoEventStore, awaited: float, blocked: float
) -> None:
    attempts = 0
    first = event(f"live-{uuid.uuid4().hex}", 1)

    async def work(uow: Any) -> None:
        nonlocal attempts
        attempts += 1
        await store.append(first.aggregate_id, [first], 0, uow=uow)
        say("APPENDED", attempts)
        await asyncio.sleep(awaited)
        time.sleep(blocked)  # the event loop blocked: only the heartbeat thread runs

    await run_unit_of_work(connection, work)
    say("COMMITTED", first.event_id)


async def write_randomly(
    connection: MongoConnectionManager, store: MongoEventStore, seed: int, point: str | None
) -> None:
    rng = random.Random(seed)
    if point:

        async def stop_here() -> None:
            say("AT", point)
            await forever()

        async with races.acting_at(point, stop_here):
            await _append_forever(connection, store, rng)
    await _append_forever(connection, store, rng)


async def _append_forever(
    connection: MongoConnectionManager, store: MongoEventStore, rng: random.Random
) -> None:
    while True:
        sid = f"w-{uuid.uuid4().hex}"
        batch = [event(sid, v) for v in range(1, rng.randint(1, 3) + 1)]
        if rng.random() < 0.5:
            await store.append(sid, batch, 0)
        else:
            await run_unit_of_work(connection, _appending(store, batch, rng.uniform(0, 0.03)))
        say("ACK", *(e.event_id for e in batch))


def _appending(store: MongoEventStore, batch: list[StoredEvent], pause: float) -> Any:
    async def work(uow: Any) -> None:
        await store.append(batch[0].aggregate_id, batch, 0, uow=uow)
        await asyncio.sleep(pause)  # a unit of work that does more than append

    return work


async def main(uri: str, database: str, collection: str, mode: str, args: list[str]) -> None:
    async with MongoConnectionManager(uri, database=database) as connection:
        store = MongoEventStore(connection, events_collection=collection)
        if mode == "hold":
            await hold(connection, store)
        elif mode == "live":
            await live(connection, store, float(args[0]), float(args[1]))
        elif mode == "random":
            await write_randomly(
                connection, store, int(args[0]), args[1] if len(args) > 1 else None
            )
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    uri, database, collection, mode, *rest = sys.argv[1:]
    asyncio.run(main(uri, database, collection, mode, rest))
