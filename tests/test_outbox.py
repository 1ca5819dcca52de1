"""The outbox under competing relays, a relay killed mid-batch, poison messages and ordering."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from eventlab import (
    InMemoryPublisher,
    LoggingPublisher,
    MongoConnectionManager,
    MongoOutboxStorage,
    OutboxMessage,
    OutboxRelay,
)
from eventlab._domain import utc_now


class GuardedPublisher:
    """Fails the test if one message is ever held by two relays at once; poisons some ids."""

    def __init__(self, poison: set[str] = frozenset(), delay: float = 0.0) -> None:  # type: ignore[assignment]
        self.in_flight: dict[str, str] = {}
        self.violations: list[str] = []
        self.published: list[str] = []
        self.poison = poison
        self.delay = delay
        self.worker = ""

    def for_worker(self, worker: str) -> Any:
        outer = self

        class Bound:
            async def publish(self, message: OutboxMessage) -> None:
                if message.message_id in outer.in_flight:
                    outer.violations.append(message.message_id)
                outer.in_flight[message.message_id] = worker
                try:
                    if outer.delay:
                        await asyncio.sleep(outer.delay)
                    if message.message_id in outer.poison:
                        raise RuntimeError("poison message")
                    outer.published.append(message.message_id)
                finally:
                    outer.in_flight.pop(message.message_id, None)

        return Bound()


def messages(n: int, keys: int = 0) -> list[OutboxMessage]:
    start = utc_now() - timedelta(minutes=5)
    return [
        OutboxMessage(
            message_id=f"m-{i:05d}",
            event_type="Thing",
            payload={"i": i},
            created_at=start + timedelta(milliseconds=i),
            ordering_key=f"k-{i % keys}" if keys else None,
        )
        for i in range(n)
    ]


@pytest.mark.slow
async def test_two_relays_and_a_killed_one_deliver_every_message(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStorage(connection, max_attempts=3, backoff_base=0.05, backoff_max=0.2)
    poison = {"m-00013", "m-00500", "m-00999"}
    await outbox.save_messages(messages(1000))
    publisher = GuardedPublisher(poison=poison)

    # a relay claims a batch with a short lease and dies before publishing any of it
    doomed = await outbox.claim("doomed-worker", limit=40, lease=0.5)
    assert len(doomed) == 40
    assert all(m.claimed_by == "doomed-worker" for m in doomed)

    relays = [
        OutboxRelay(
            outbox,
            publisher.for_worker(f"w{i}"),
            worker_id=f"w{i}",
            batch_size=25,
            lease=30,
            poll_interval=0.05,
        )
        for i in range(2)
    ]
    for relay in relays:
        relay.start()
    deadline = asyncio.get_running_loop().time() + 240
    while asyncio.get_running_loop().time() < deadline:
        counts = await outbox.counts()
        if counts.get("published", 0) + counts.get("dead", 0) == 1000:
            break
        await asyncio.sleep(0.2)
    for relay in relays:
        await relay.stop()

    counts = await outbox.counts()
    assert counts == {"published": 997, "dead": 3}, counts
    assert publisher.violations == [], "a message was held by two live relays at once"
    assert set(publisher.published) == {f"m-{i:05d}" for i in range(1000)} - poison
    assert {m.message_id for m in doomed} <= set(publisher.published) | poison
    for message_id in poison:
        dead = await outbox.get(message_id)
        assert dead is not None and dead.status == "dead" and dead.retry_count == 3
        assert dead.error == "RuntimeError: poison message"
    assert sum(r.published for r in relays) == 997
    assert sum(r.failed for r in relays) == 9


def test_retry_delays_back_off(connection: MongoConnectionManager) -> None:
    outbox = MongoOutboxStorage(connection, backoff_base=1.0, backoff_max=30.0)
    delays = [outbox.retry_delay(n) for n in range(1, 8)]
    for attempt, delay in enumerate(delays, start=1):
        expected = min(30.0, 2 ** (attempt - 1))
        assert 0.75 * expected <= delay <= 1.25 * expected


async def test_failed_message_waits_for_its_backoff(connection: MongoConnectionManager) -> None:
    outbox = MongoOutboxStorage(connection, max_attempts=5, backoff_base=60)
    await outbox.save_messages(messages(1))
    (claimed,) = await outbox.claim("w", limit=5)
    failed = await outbox.mark_failed(claimed.message_id, "broker down")
    assert failed is not None and failed.status == "failed" and failed.retry_count == 1
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at - utc_now() > timedelta(seconds=40)
    assert await outbox.claim("w", limit=5) == []  # not due yet
    assert await outbox.get_pending() == []
    assert await outbox.mark_failed("missing", "x") is None


async def test_live_lease_is_exclusive_and_expired_lease_is_reclaimable(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStorage(connection)
    await outbox.save_messages(messages(3))
    first = await outbox.claim("a", limit=10, lease=0.3)
    assert len(first) == 3
    assert await outbox.claim("b", limit=10) == []
    assert await outbox.mark_published(["m-00000"], worker_id="b") == 0  # not b's claim
    await asyncio.sleep(0.4)
    second = await outbox.claim("b", limit=10)
    assert {m.message_id for m in second} == {"m-00000", "m-00001", "m-00002"}
    assert await outbox.mark_published(["m-00000", "m-00001", "m-00002"], worker_id="a") == 0
    assert await outbox.mark_published(["m-00000", "m-00001", "m-00002"], worker_id="b") == 3


async def test_per_key_ordering(connection: MongoConnectionManager) -> None:
    outbox = MongoOutboxStorage(connection, ordered=True, backoff_base=0.01, backoff_max=0.02)
    await outbox.save_messages(messages(60, keys=4))
    order: dict[str, list[int]] = defaultdict(list)

    class Recorder:
        async def publish(self, message: OutboxMessage) -> None:
            order[message.ordering_key or ""].append(message.payload["i"])
            await asyncio.sleep(0.001)

    relays = [
        OutboxRelay(outbox, Recorder(), worker_id=f"r{i}", batch_size=5, poll_interval=0.02)
        for i in range(3)
    ]
    tasks = [relay.start() for relay in relays]
    for _ in range(400):
        if (await outbox.counts()).get("published") == 60:
            break
        await asyncio.sleep(0.05)
    for relay in relays:
        await relay.stop()
    assert all(t.done() for t in tasks)
    assert sum(len(v) for v in order.values()) == 60
    for key, published in order.items():
        assert published == sorted(published), f"key {key} published out of order"


async def test_purge_and_publishers(connection: MongoConnectionManager, caplog: Any) -> None:
    outbox = MongoOutboxStorage(connection)
    await outbox.save_messages(messages(5))
    await outbox.save_messages([])
    memory = InMemoryPublisher()
    relay = OutboxRelay(outbox, memory, batch_size=10)
    assert await relay.run_once() == 5
    assert [m.payload["i"] for m in memory.published] == [0, 1, 2, 3, 4]
    assert await outbox.purge_published(timedelta(seconds=-1)) == 5
    assert await outbox.counts() == {}
    with caplog.at_level("INFO", logger="eventlab.outbox.published"):
        await LoggingPublisher().publish(messages(1)[0])
    assert "Thing m-00000" in caplog.text
