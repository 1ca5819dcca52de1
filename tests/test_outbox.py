"""The outbox under competing relays, a relay killed mid-batch, stale relays, poison messages,
server errors, and per-key order."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventlab import (
    ConfigurationError,
    ConnectionFailedError,
    DuplicateMessageError,
    InMemoryPublisher,
    LoggingPublisher,
    MongoConnectionManager,
    MongoEventStore,
    MongoOutboxStore,
    MongoUnitOfWork,
    OutboxMessage,
    OutboxRelay,
    SerializationError,
    StoredEvent,
    run_unit_of_work,
)
from eventlab._core.domain import utc_now
from eventlab.testing import eventually

from .conftest import make_event, stream_id

CHILD = Path(__file__).with_name("_relay_child.py")


def messages(n: int, keys: int = 0, prefix: str = "m") -> list[OutboxMessage]:
    start = utc_now() - timedelta(minutes=5)
    return [
        OutboxMessage(
            message_id=f"{prefix}-{i:05d}",
            event_type="Thing",
            payload={"i": i},
            created_at=start + timedelta(milliseconds=i),
            ordering_key=f"k-{i % keys}" if keys else None,
        )
        for i in range(n)
    ]


class Ledger:
    """What publishers saw: each attempt's interval, its outcome, failures per message."""

    def __init__(self) -> None:
        self.intervals: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
        self.successes: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def publisher(
        self,
        worker: str,
        *,
        poison: set[str] = frozenset(),  # type: ignore[assignment]
        flaky: dict[str, int] | None = None,
        slow: set[str] = frozenset(),  # type: ignore[assignment]
        slow_seconds: float = 0.0,
    ) -> Any:
        ledger = self
        flaky = flaky or {}

        class Bound:
            async def publish(self, message: OutboxMessage) -> None:
                start = time.monotonic()
                ok = False
                try:
                    await asyncio.sleep(slow_seconds if message.message_id in slow else 0.001)
                    if message.message_id in poison:
                        raise RuntimeError("poison message")
                    if ledger.failures[message.message_id] < flaky.get(message.message_id, 0):
                        raise ConnectionError("broker hiccup")
                    ok = True
                finally:
                    ledger.intervals[message.message_id].append((start, time.monotonic(), worker))
                    if ok:
                        ledger.successes[message.message_id] += 1
                    else:  # raised, or cancelled because the lease was about to end
                        ledger.failures[message.message_id] += 1

        return Bound()


def overlapping(intervals: dict[str, list[tuple[float, float, str]]]) -> list[str]:
    """Messages that were inside ``publish`` in two places at the same moment."""
    bad = []
    for message_id, spans in intervals.items():
        spans = sorted(spans)
        if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)):
            bad.append(message_id)
    return bad


async def wait_until_finished(outbox: MongoOutboxStore, total: int, seconds: float) -> None:
    async def finished() -> bool:
        counts = await outbox.counts()
        return counts.get("published", 0) + counts.get("dead", 0) == total

    await eventually(finished, f"every message published or dead ({total})", seconds=seconds)


async def claim_when_due(outbox: MongoOutboxStore, worker: str, lease: float = 30) -> Any:
    """Claim as soon as something is due for ``worker`` (a lease ending makes it due)."""
    claimed: list[OutboxMessage] = []

    async def got_some() -> bool:
        claimed.extend(await outbox.claim(worker, lease=lease))
        return bool(claimed)

    await eventually(got_some, f"a message coming due for {worker}")
    return claimed


def read_child_log(path: Path, killed_at: float) -> dict[str, list[tuple[float, float, bool]]]:
    """The killed relay's publishes: (start, end, completed); an unfinished one ends at the kill."""
    starts: dict[str, list[float]] = defaultdict(list)
    spans: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.endswith("}"):
            continue  # a line cut by the kill
        record = json.loads(line)
        if "start" in record:
            starts[record["id"]].append(record["start"])
        else:
            spans[record["id"]].append((starts[record["id"]].pop(0), record["end"], True))
    for message_id, open_starts in starts.items():
        spans[message_id].extend((s, killed_at, False) for s in open_starts)
    return spans


@pytest.mark.slow
async def test_three_relays_slow_and_failing_publishers_and_a_killed_relay(
    connection: MongoConnectionManager, mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    total, max_attempts = 1000, 3
    outbox = MongoOutboxStore(
        connection, max_attempts=max_attempts, backoff_base=0.05, backoff_max=0.2
    )
    await outbox.save_messages(messages(total))
    ids = [f"m-{i:05d}" for i in range(total)]
    poison = set(ids[207::150])  # always fail: dead after max_attempts
    flaky = {message_id: 1 + i % 2 for i, message_id in enumerate(ids[211::60])}  # recover
    # Each slow publish takes longer than the lease: renewed, never lost. The lease leaves two
    # renewal periods of slack (renewed every third of it), so a busy machine that delays one
    # renewal by a second does not end a live claim.
    slow = set(ids[203::170])
    ledger = Ledger()

    # The relay that will be killed runs in its own process: SIGKILL runs no cleanup at all.
    log = tmp_path / "child.jsonl"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), mongo_uri, database_name, str(log)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    relays = [
        OutboxRelay(
            outbox,
            ledger.publisher(f"w{i}", poison=poison, flaky=flaky, slow=slow, slow_seconds=4.0),
            worker_id=f"w{i}",
            batch_size=25,
            lease=3.0,
            poll_interval=0.05,
        )
        for i in range(3)
    ]
    try:
        await eventually(
            lambda: log.exists() and log.read_text().count('"end"') >= 30,
            "the child relay publishing its first thirty messages",
        )
        for relay in relays:
            relay.start()
        await asyncio.sleep(0.05)
        child.send_signal(signal.SIGKILL)  # mid-batch: it claims 40 at a time
        killed_at = time.monotonic()
        child.wait(10)
        await wait_until_finished(outbox, total, 180)
    finally:
        if child.poll() is None:  # pragma: no cover - only when the test failed early
            child.kill()
        for relay in relays:
            await relay.stop()

    child_spans = read_child_log(log, killed_at)
    assert sum(ok for spans in child_spans.values() for *_, ok in spans) >= 30
    everything = defaultdict(list, {k: list(v) for k, v in ledger.intervals.items()})
    for message_id, spans in child_spans.items():
        everything[message_id].extend((s, e, "doomed") for s, e, _ in spans)
    assert overlapping(everything) == [], "a message was inside publish in two relays at once"

    published = Counter(ledger.successes)
    for message_id, spans in child_spans.items():
        published[message_id] += sum(1 for *_, ok in spans if ok)
    assert set(published) == set(ids) - poison, "a message was never published"
    duplicated = {m for m, n in published.items() if n > 1}
    assert duplicated <= set(child_spans), "duplicates only of what the killed relay published"

    stored = {m.message_id: m for m in [await outbox.get(i) for i in ids] if m is not None}
    assert {m: s.retry_count for m, s in stored.items() if s.retry_count} == dict(ledger.failures)
    dead = {m for m, s in stored.items() if s.status == "dead"}
    assert dead == {m for m, n in ledger.failures.items() if n >= max_attempts} == poison
    assert all(ledger.failures[m] == 0 for m in slow), "a slow publish lost its lease"
    assert sum(r.published for r in relays) == sum(ledger.successes.values())
    assert sum(r.failed for r in relays) == sum(ledger.failures.values())
    assert {s.status for m, s in stored.items() if m not in poison} == {"published"}


async def test_a_late_failure_after_a_reclaim_changes_nothing(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection, max_attempts=1)
    await outbox.save_messages(messages(1))
    (stale,) = await outbox.claim("a", lease=0.2)
    (owned,) = await claim_when_due(outbox, "b")
    assert owned.fence == stale.fence + 1 and owned.claim_token != stale.claim_token
    assert await outbox.mark_published([owned]) == 1
    assert await outbox.mark_failed(stale, "late failure") is None  # max_attempts=1: was "dead"
    assert await outbox.mark_published([stale]) == 0
    assert await outbox.release([stale]) == 0
    assert await outbox.renew([stale], 30) == set()
    after = await outbox.get(owned.message_id)
    assert after is not None
    assert (after.status, after.retry_count, after.error) == ("published", 0, None)
    assert await outbox.claim("c") == []


async def test_a_late_failure_during_a_live_lease_keeps_the_owner(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection)
    await outbox.save_messages(messages(1))
    (stale,) = await outbox.claim("a", lease=0.2)
    (owned,) = await claim_when_due(outbox, "b")
    assert await outbox.mark_failed(stale, "late failure") is None
    assert await outbox.claim("c") == [], "a third relay took a message b still holds"
    held = await outbox.get(owned.message_id)
    assert held is not None
    assert (held.status, held.claimed_by, held.claim_token) == ("claimed", "b", owned.claim_token)
    assert held.retry_count == 0
    assert await outbox.renew([owned], 30) == {owned.message_id}


async def test_marking_without_the_claim_token_is_refused(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection)
    await outbox.save_messages(messages(2))
    claimed = await outbox.claim("a")
    before = [await outbox.get(m.message_id) for m in claimed]
    with pytest.raises(ConfigurationError, match="claim token"):
        await outbox.mark_published(["m-00000"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="claim token"):
        await outbox.mark_published([messages(1)[0]])  # never claimed: no token
    with pytest.raises(ConfigurationError, match="claim token"):
        await outbox.mark_failed("m-00001", "x")  # type: ignore[arg-type]
    assert [await outbox.get(m.message_id) for m in claimed] == before
    assert await outbox.mark_published(claimed[0]) == 1  # type: ignore[arg-type]  # one message
    assert await outbox.mark_published([]) == 0 and await outbox.release([]) == 0


async def test_concurrent_failures_are_counted_once_each(
    connection: MongoConnectionManager,
) -> None:
    """Fifty rounds: two stale copies of one claim fail at once; one failure is counted."""
    outbox = MongoOutboxStore(connection, max_attempts=100, backoff_base=0)
    await outbox.save_messages(messages(1))
    for round_number in range(1, 51):
        (claimed,) = await outbox.claim("a")
        results = await asyncio.gather(
            outbox.mark_failed(claimed, "one"), outbox.mark_failed(claimed, "two")
        )
        assert sum(r is not None for r in results) == 1
        stored = await outbox.get(claimed.message_id)
        assert stored is not None and stored.retry_count == round_number


async def test_failed_message_waits_for_its_backoff_by_the_server_clock(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection, max_attempts=5, backoff_base=60)
    await outbox.save_messages(messages(1))
    (claimed,) = await outbox.claim("w", limit=5)
    assert claimed.lease_until is not None
    server_now = await outbox.clock.now()
    assert timedelta(seconds=25) < claimed.lease_until - server_now <= timedelta(seconds=30)
    failed = await outbox.mark_failed(claimed, "broker down")
    assert failed is not None and failed.status == "failed" and failed.retry_count == 1
    assert failed.next_attempt_at is not None and failed.claim_token is None
    assert failed.next_attempt_at - server_now > timedelta(seconds=40)
    assert await outbox.claim("w", limit=5) == []  # not due yet
    assert await outbox.get_pending() == []


async def test_a_client_clock_running_ahead_does_not_steal_live_leases(
    connection: MongoConnectionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = MongoOutboxStore(connection)
    await outbox.save_messages(messages(3))
    assert len(await outbox.claim("a", lease=30)) == 3

    import time

    import eventlab._mongo.clock as clock_module

    monkeypatch.setattr(clock_module, "client_time", lambda: time.time() + 3600)
    ahead = MongoOutboxStore(connection)  # a relay on a host whose clock is an hour ahead
    assert await ahead.claim("b") == []
    lag = await ahead.lag()
    assert (lag.due, lag.in_flight) == (0, 3)


def test_retry_delays_back_off(connection: MongoConnectionManager) -> None:
    outbox = MongoOutboxStore(connection, backoff_base=1.0, backoff_max=30.0)
    delays = [outbox.retry_delay(n) for n in range(1, 8)]
    for attempt, delay in enumerate(delays, start=1):
        expected = min(30.0, 2 ** (attempt - 1))
        assert 0.75 * expected <= delay <= 1.25 * expected
    with pytest.raises(ConfigurationError):
        MongoOutboxStore(connection, max_attempts=0)


async def test_save_messages_is_idempotent_by_id_and_content(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection)
    batch = messages(3)
    await outbox.save_messages(batch)
    await outbox.save_messages(batch)  # a retry: no error, nothing new
    async with MongoUnitOfWork(connection) as uow:  # and inside a transaction
        await outbox.save_messages([*batch, *messages(1, prefix="n")], uow=uow)
        await uow.commit()
    assert await outbox.counts() == {"pending": 4}

    changed = [
        batch[0],
        OutboxMessage("m-00001", "Thing", {"i": "other"}),
        *messages(1, prefix="x"),
    ]
    with pytest.raises(DuplicateMessageError, match="m-00001") as raised:
        await outbox.save_messages(changed)
    assert raised.value.message_ids == ["m-00001"]
    async with MongoUnitOfWork(connection) as uow:
        with pytest.raises(DuplicateMessageError):
            await outbox.save_messages(changed, uow=uow)
    assert await outbox.get("x-00000") is None, "a refused save wrote nothing"
    stored = await outbox.get("m-00001")
    assert stored is not None and stored.payload == {"i": 1}


async def test_retried_unit_of_work_after_an_applied_commit_goes_through(
    connection: MongoConnectionManager, tx_store: MongoEventStore
) -> None:
    """The caller's retry of a unit of work whose commit did apply: events and messages alike
    come back as stored instead of raising."""
    outbox = MongoOutboxStore(connection)
    await outbox.migrate()  # at startup, before any unit of work uses it
    events = [make_event(stream_id(), 1)]

    async def work(uow: Any) -> list[StoredEvent]:
        stored = await tx_store.append(events[0].aggregate_id, events, 0, uow=uow)
        await outbox.save_messages([OutboxMessage.from_stored_event(e) for e in stored], uow=uow)
        return stored

    first = await run_unit_of_work(connection, work)
    again = await run_unit_of_work(connection, work)  # as after CommitOutcomeUnknownError
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert await outbox.counts() == {"pending": 1}


async def test_bad_input_is_a_typed_error_and_writes_nothing(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection)
    with pytest.raises(SerializationError, match="payload"):
        await outbox.save_messages([*messages(1), OutboxMessage("bad", "T", {"x": object()})])
    with pytest.raises(ConfigurationError, match="twice"):
        await outbox.save_messages([messages(1)[0], messages(1)[0]])
    with pytest.raises(ConfigurationError, match="sequence"):
        OutboxMessage("s", "T", {}, sequence="1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lease"):
        await outbox.claim("w", lease=0)
    with pytest.raises(ConfigurationError, match="worker_id"):
        await outbox.claim("")
    assert await outbox.counts() == {}


async def test_a_server_that_is_down_is_a_typed_error() -> None:
    down = MongoConnectionManager(
        "mongodb://127.0.0.1:1/?directConnection=true", server_selection_timeout=0.3
    )
    outbox = MongoOutboxStore(down)
    with pytest.raises(ConnectionFailedError):
        await outbox.save_messages(messages(1))
    with pytest.raises(ConnectionFailedError):
        await outbox.claim("w")


class CountingOutbox(MongoOutboxStore):
    """Counts the relay's lease renewals (a signal for the publisher below)."""

    renewals = 0

    async def renew(self, messages: Any, lease: Any) -> set[str]:
        held = await super().renew(messages, lease)
        self.renewals += 1
        return held


async def test_relay_renews_its_lease_while_a_slow_publish_runs(
    connection: MongoConnectionManager,
) -> None:
    # The publish outlasts the lease by its own measure: it ends only after four renewals
    # (a lease and a third), however slow the machine; the lease is long enough (3 s,
    # renewed every second) that a busy scheduler does not make a renewal late.
    outbox = CountingOutbox(connection)
    await outbox.save_messages(messages(2))
    published: list[str] = []

    class AfterRenewals:
        async def publish(self, message: OutboxMessage) -> None:
            if message.message_id == "m-00000":
                await eventually(lambda: outbox.renewals >= 4, "four lease renewals")
            published.append(message.message_id)

    relay = OutboxRelay(outbox, AfterRenewals(), batch_size=2, lease=3.0)
    assert await relay.run_once() == 2
    assert sorted(published) == ["m-00000", "m-00001"] and relay.lost == 0
    assert outbox.renewals >= 4
    assert await outbox.counts() == {"published": 2}


class UnrenewableOutbox(MongoOutboxStore):
    """The server stops answering renewals (a partition between relay and primary)."""

    async def renew(self, messages: Any, lease: Any) -> set[str]:
        raise ConnectionFailedError("renewal lost in a partition")


async def test_a_publish_is_cancelled_before_a_lease_that_cannot_be_renewed_ends(
    connection: MongoConnectionManager,
) -> None:
    outbox = UnrenewableOutbox(connection)
    await outbox.save_messages(messages(2))
    ledger = Ledger()
    relay = OutboxRelay(
        outbox, ledger.publisher("a", slow={"m-00000"}, slow_seconds=5), batch_size=2, lease=0.5
    )
    started = time.monotonic()
    assert await relay.run_once() == 2
    _, end, _ = ledger.intervals["m-00000"][0]
    # The safety property itself, not a speed: the lease (0.5 s) is measured from no earlier
    # than `started`, and another relay may claim the message once it ends.
    assert end - started < 0.5, "the publish outlived the lease"
    first = await outbox.get("m-00000")
    assert first is not None and first.status == "failed" and "LeaseExpired" in (first.error or "")
    # The second message's lease had run out too: it was not published, but given back or due.
    assert ledger.intervals.get("m-00001") is None and relay.lost == 1
    assert {m.message_id for m in await claim_when_due(outbox, "b")} == {"m-00001"}


async def test_relay_survives_server_errors_and_reports_its_health(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection)
    await outbox.save_messages(messages(20))
    memory = InMemoryPublisher()
    relay = OutboxRelay(outbox, memory, batch_size=5, poll_interval=0.02, max_backoff=0.1)
    admin = connection.client.admin
    # Not a connection error: an ordinary command failure, which used to end the relay task.
    await admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 4},
            "data": {"failCommands": ["update"], "errorCode": 2, "errmsg": "injected"},
        }
    )
    try:
        relay.start()
        await wait_until_finished(outbox, 20, 30)
        health = await relay.health()
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await relay.stop()
    assert health.running and health.healthy
    assert health.last_error is not None and "failCommand" in health.last_error
    assert health.last_success_at is not None and health.last_error_at is not None
    assert health.last_success_at > health.last_error_at
    assert health.lag is not None and health.lag.due == 0
    assert sorted(m.message_id for m in memory.published) == [f"m-{i:05d}" for i in range(20)]
    stopped = await relay.health()
    assert not stopped.running and not stopped.healthy


async def test_stop_returns_within_its_timeout_when_the_publisher_hangs(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection)
    await outbox.save_messages(messages(3))
    entered = asyncio.Event()

    cancelled = asyncio.Event()

    class Hung:
        async def publish(self, message: OutboxMessage) -> None:
            entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    relay = OutboxRelay(outbox, Hung(), batch_size=3, lease=60)
    relay.start()
    await asyncio.wait_for(entered.wait(), 10)
    await asyncio.wait_for(relay.stop(timeout=0.3), 30)  # returns: the hung publish is not awaited
    assert cancelled.is_set(), "the hung publish was cancelled"
    # Nothing was published; the batch was handed back at once rather than after 60 s.
    assert await outbox.counts() == {"pending": 3}
    assert len(await outbox.claim("next")) == 3


async def test_lag_and_the_indexes_the_claim_uses(connection: MongoConnectionManager) -> None:
    outbox = MongoOutboxStore(connection, ordered=True)
    await outbox.save_messages(messages(10, keys=2))
    lag = await outbox.lag()
    assert lag.due == 10 and lag.in_flight == 0 and lag.oldest_due_seconds >= 0
    names = {i["name"] async for i in await outbox.collection.list_indexes()}
    assert names == {"_id_", "due", "open_key_sequence"}
    plan = await connection.database.command(
        "explain",
        {"find": outbox.collection_name, "filter": {"due_at": {"$lte": utc_now()}}, "limit": 5},
    )
    assert "'indexName': 'due'" in str(plan["queryPlanner"]["winningPlan"])
    heads = await connection.database.command(
        "explain",
        {
            "aggregate": outbox.collection_name,
            "pipeline": [{"$match": {"open_key": {"$in": ["k-0"]}}}],
            "cursor": {},
        },
    )
    assert "'indexName': 'open_key_sequence'" in str(heads)


async def test_migrations_create_the_outbox_indexes_once(
    connection: MongoConnectionManager,
) -> None:
    outbox = MongoOutboxStore(connection, ordered=True)
    result = await outbox.migrate()
    assert result.applied == ("outbox:0001_outbox_due", "outbox:0002_outbox_ordering")
    names = {i["name"] async for i in await outbox.collection.list_indexes()}
    assert names == {"_id_", "due", "open_key_sequence"}
    assert (await outbox.migrate()).applied == ()


async def test_per_key_order_under_three_relays(connection: MongoConnectionManager) -> None:
    outbox = MongoOutboxStore(connection, ordered=True, backoff_base=0.01, backoff_max=0.02)
    await outbox.save_messages(messages(60, keys=4))
    order: dict[str, list[int]] = defaultdict(list)
    flaky = {"m-00005", "m-00022"}

    class Recorder:
        async def publish(self, message: OutboxMessage) -> None:
            await asyncio.sleep(0.001)
            if message.message_id in flaky:
                flaky.discard(message.message_id)
                raise RuntimeError("once")
            order[message.ordering_key or ""].append(message.payload["i"])

    relays = [
        OutboxRelay(outbox, Recorder(), worker_id=f"r{i}", batch_size=5, poll_interval=0.02)
        for i in range(3)
    ]
    for relay in relays:
        relay.start()
    try:
        await wait_until_finished(outbox, 60, 60)
    finally:
        for relay in relays:
            await relay.stop()
    assert sum(len(v) for v in order.values()) == 60
    for key, published in order.items():
        assert published == sorted(published), f"key {key} published out of order"


async def test_versions_are_relayed_in_order_whatever_the_writers_clocks_say(
    connection: MongoConnectionManager, tx_store: MongoEventStore
) -> None:
    """Two hosts with skewed clocks write versions of one aggregate: the later version carries
    the earlier occurred_at. Order follows the version."""
    outbox = MongoOutboxStore(connection, ordered=True)
    await outbox.migrate()  # at startup, before any unit of work uses it
    aggregate = stream_id()
    skews = [timedelta(hours=1), timedelta(hours=-1), timedelta(minutes=30), timedelta(0)]
    for version, skew in enumerate(skews, start=1):
        event = make_event(aggregate, version)
        event = replace(event, occurred_at=event.occurred_at + skew)
        async with MongoUnitOfWork(connection) as uow:
            stored = await tx_store.append(aggregate, [event], version - 1, uow=uow)
            await outbox.save_messages([OutboxMessage.from_stored_event(stored[0])], uow=uow)
            await uow.commit()
    memory = InMemoryPublisher()
    relay = OutboxRelay(outbox, memory, batch_size=10)
    while await relay.run_once():
        pass
    assert [m.headers["version"] for m in memory.published] == [1, 2, 3, 4]
    assert [m.sequence for m in memory.published] == [1, 2, 3, 4]


async def test_an_older_message_that_commits_late_is_still_relayed_first(
    connection: MongoConnectionManager,
) -> None:
    """Keyed messages without a sequence: the second writer of a key waits for the first
    transaction, so sequence order is commit order even when the first commits late."""
    outbox = MongoOutboxStore(connection, ordered=True)
    await outbox.migrate()
    first = MongoUnitOfWork(connection)
    await first.__aenter__()
    await outbox.save_messages([OutboxMessage("early", "T", {}, ordering_key="acct")], uow=first)

    attempts = 0

    async def second_writer(uow: Any) -> None:
        nonlocal attempts
        attempts += 1
        await outbox.save_messages([OutboxMessage("late", "T", {}, ordering_key="acct")], uow=uow)

    second = asyncio.create_task(run_unit_of_work(connection, second_writer))
    await eventually(lambda: attempts >= 2, "the second writer meeting the first's lock")
    assert not second.done(), "the second writer of the key must wait for the first"
    memory = InMemoryPublisher()
    relay = OutboxRelay(outbox, memory)
    assert await relay.run_once() == 0  # nothing committed yet
    await first.commit()
    await first.__aexit__(None, None, None)
    await asyncio.wait_for(second, 30)
    while await relay.run_once():
        pass
    assert [(m.message_id, m.sequence) for m in memory.published] == [("early", 1), ("late", 2)]


async def test_purge_and_publishers(connection: MongoConnectionManager, caplog: Any) -> None:
    outbox = MongoOutboxStore(connection)
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
    with pytest.raises(ConfigurationError):
        OutboxRelay(outbox, memory, lease=1, renew_every=2)
