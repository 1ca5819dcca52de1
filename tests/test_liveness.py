"""Crashed writers hold up no one for long: a process killed inside a transaction has it ended
by the processes it holds up, once its lease has expired; a live one, however slow, never.

Writers run in child processes (tests/_writer_child.py) and are SIGKILLed at race points (the
child prints where it stopped and waits there) or at random moments. No test here bounds a
duration: each waits on a signal (a line from a child, a document gone, a follower's
position) with a stall detector several times what the behaviour needs; how fast a crash is
recovered from is measured in benchmarks/test_bench_liveness.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from eventlab import (
    CatchUpSubscription,
    ConfigurationError,
    ConnectionFailedError,
    EventlabError,
    EventRegistry,
    MongoConnectionManager,
    MongoEventStore,
    StoredEvent,
)
from eventlab._core.tombstones import TOMBSTONE_FIELD
from eventlab._mongo import liveness as liveness
from eventlab._mongo import process_registry as registry_state
from eventlab._mongo.heartbeat import _Beat
from eventlab._mongo.process_registry import COLLECTION, session_ids
from eventlab.testing import eventually

from .conftest import counter_is_free, make_event, stream_id

CHILD = Path(__file__).with_name("_writer_child.py")
STALL = 120.0
"""Seconds after which a child that has not said what it was expected to say is stalled."""
EVENTS = "held_events"

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class WriterChild:
    """A writer process and the lines it has printed."""

    def __init__(self, uri: str, database: str, mode: str, *args: object) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), uri, database, EVENTS, mode, *map(str, args)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        self.lines: list[list[str]] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    async def line(self, word: str) -> list[str]:
        """The next line that starts with ``word`` (the lines before it are kept too)."""
        assert self.process.stdout is not None
        while True:
            text = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), STALL)
            if not text:
                raise AssertionError(f"the child ended before saying {word}: {self.lines}")
            self.lines.append(text.split())
            if self.lines[-1][0] == word:
                return self.lines[-1]

    def kill(self) -> None:
        """SIGKILL, then read what it printed before it died."""
        self.process.send_signal(signal.SIGKILL)
        out, _ = self.process.communicate(timeout=30)
        self.lines += [text.split() for text in out.splitlines() if text.strip()]

    def said(self, word: str) -> list[list[str]]:
        return [line for line in self.lines if line and line[0] == word]


@pytest.fixture
async def processes(connection: MongoConnectionManager) -> Any:
    return connection.database[COLLECTION]


def held_store(connection: MongoConnectionManager, registry: EventRegistry, positions: str) -> Any:
    return MongoEventStore(
        connection, registry=registry, positions=positions, events_collection=EVENTS
    )


async def append_one(store: MongoEventStore) -> StoredEvent:
    sid = stream_id()
    (stored,) = await store.append(sid, [make_event(sid, 1)], 0)
    return stored


async def is_reaped(processes: Any, pid: int) -> bool:
    return await processes.find_one({"pid": pid}) is None


# -- a crash is recovered from ---------------------------------------------------------------


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_a_writer_killed_inside_its_unit_of_work_is_ended_by_those_it_holds_up(
    positions: str,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
    mongo_uri: str,
    database_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = held_store(connection, registry, positions)
    await append_one(store)
    child = WriterChild(mongo_uri, database_name, "hold")
    held = int((await child.line("HOLDING"))[1])
    listed = await processes.find_one({"pid": child.pid})
    assert listed is not None and session_ids(listed["sessions"]), (
        "the child listed its session before its transaction took the counter or a position"
    )
    child.kill()
    caplog.set_level(logging.WARNING, "eventlab.liveness")
    if positions == "transactional":
        assert not await counter_is_free(store), "the dead transaction holds the counter"
        after = await append_one(store)  # held up until the dead transaction is ended
        assert after.position == held, "the dead append's position was rolled back, not lost"
        assert await counter_is_free(store)
    else:
        after = await append_one(store)
        async with store.subscribe() as subscription:
            async for event in subscription:
                if event.event_id == after.event_id:
                    break
        assert held in subscription.gaps, "the follower passed the dead append as a gap"
        assert (await store.events.find_one({"position": held}))[TOMBSTONE_FIELD]
    assert await is_reaped(processes, child.pid)
    ended = [r.getMessage() for r in caplog.records if "server session(s)" in r.getMessage()]
    assert any(f"pid {child.pid} " in message for message in ended), ended


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_writers_killed_at_random_moments_lose_no_acknowledged_append(
    positions: str,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
    mongo_uri: str,
    database_name: str,
) -> None:
    """Children append on their own and in units of work; each is SIGKILLed at a race point
    (after listing its session; holding its positions before the commit; inside a unit of
    work) or at a random moment, while this process appends and follows the log."""
    rng = random.Random(31 if positions == "transactional" else 32)
    store = held_store(connection, registry, positions)
    await append_one(store)
    mine: list[Any] = []  # this process's acknowledged appends
    theirs: list[str] = []  # the children's
    delivered: list[StoredEvent] = []
    subscription = store.subscribe()
    follower = asyncio.create_task(_follow(subscription, delivered))
    writer = asyncio.create_task(_write_on(store, mine))
    plans = ["transaction.before_commit", "hold", "transaction.listed", "random", "random"]
    try:
        for round_, plan in enumerate(rng.sample(plans, len(plans))):
            child = await _killed_child(mongo_uri, database_name, plan, round_, rng)
            theirs.extend(i for line in child.said("ACK") for i in line[1:])
            if plan in ("transaction.before_commit", "hold"):  # it died holding something

                async def reaped(pid: int = child.pid) -> bool:
                    return await is_reaped(processes, pid)

                await eventually(reaped, f"the dead child of round {round_} reaped")
            before = len(mine)

            async def writes_go_on(before: int = before) -> bool:
                return len(mine) >= before + 3

            await eventually(writes_go_on, f"this process's appends going on after round {round_}")
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        acknowledged = [str(i) for i in mine] + theirs
        await _check_exact(store, acknowledged, subscription, delivered, positions)
    finally:
        writer.cancel()
        await subscription.aclose()
        await asyncio.gather(writer, follower, return_exceptions=True)


async def _killed_child(
    uri: str, database: str, plan: str, round_: int, rng: random.Random
) -> WriterChild:
    if plan == "hold":
        child = WriterChild(uri, database, "hold")
        await child.line("HOLDING")
    elif plan == "random":
        child = WriterChild(uri, database, "random", round_)
        await child.line("ACK")
        await asyncio.sleep(rng.uniform(0, 0.3))  # a random moment, not a bound
    else:
        child = WriterChild(uri, database, "random", round_, plan)
        await child.line("AT")
    child.kill()
    return child


async def _follow(subscription: CatchUpSubscription, delivered: list[StoredEvent]) -> None:
    async for event in subscription:
        delivered.append(event)


async def _write_on(store: MongoEventStore, acknowledged: list[Any]) -> None:
    while True:
        acknowledged.append((await append_one(store)).event_id)


async def _check_exact(
    store: MongoEventStore,
    acknowledged: list[str],
    subscription: CatchUpSubscription,
    delivered: list[StoredEvent],
    positions: str,
) -> None:
    """Every acknowledged event stored once and whole; the follower saw exactly the log."""
    head = (await store.log.head()).position

    async def caught_up() -> bool:
        return subscription.position >= head

    await eventually(caught_up, "the follower reaching the head")
    documents = await store.events.find({}, sort=[("position", 1)]).to_list(None)
    events = [d for d in documents if not d.get(TOMBSTONE_FIELD)]
    stored_ids = [str(d["_id"]) for d in events]
    assert len(set(stored_ids)) == len(stored_ids)
    missing = set(acknowledged) - set(stored_ids)
    assert not missing, f"{len(missing)} acknowledged appends lost"
    streams: dict[str, list[int]] = {}
    for d in events:
        streams.setdefault(d["aggregate_id"], []).append(d["version"])
    assert all(v == list(range(1, len(v) + 1)) for v in streams.values()), "a batch split"
    assert [str(e.event_id) for e in delivered if (e.position or 0) <= head] == stored_ids[
        : len([d for d in events if d["position"] <= head])
    ], "the follower missed, repeated or reordered an event"
    taken = [d["position"] for d in documents if d["position"] <= head]
    if positions == "transactional":
        assert taken == list(range(1, head + 1)), "positions not dense"
        assert len(taken) == len([d for d in events if d["position"] <= head]), "a tombstone"
    else:
        assert taken == list(range(1, head + 1)), "a position neither stored nor abandoned"


# -- a live process is never ended -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
async def test_a_live_30_second_unit_of_work_beside_a_crashed_one_commits(
    positions: str,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
    mongo_uri: str,
    database_name: str,
) -> None:
    """A child killed inside its unit of work, then a live child whose unit of work stays open
    30 s (15 s awaiting, 15 s with its event loop blocked) while this process, held up by it
    (its appends wait on the counter, or its follower on the live position), keeps asking for
    dead processes to be reaped. The dead one is ended; the live one commits without ever
    being run again."""
    store = held_store(connection, registry, positions)
    await append_one(store)
    (registry_of_this_process,) = liveness.registries_of(connection.client)
    crashed = WriterChild(mongo_uri, database_name, "hold")
    await crashed.line("HOLDING")
    crashed.kill()
    live = WriterChild(mongo_uri, database_name, "live", 15, 15)
    subscription = store.subscribe()
    delivered: list[StoredEvent] = []
    follower = asyncio.create_task(_follow(subscription, delivered))
    acknowledged: list[Any] = []
    writer = asyncio.create_task(_write_on(store, acknowledged))
    try:
        await live.line("APPENDED")
        rounds_before = registry_of_this_process.counters.reap_rounds
        committed = await live.line("COMMITTED")
        assert registry_of_this_process.counters.reap_rounds > rounds_before, (
            "this process, held up by the live unit of work, looked for dead processes"
        )
        # Its attempts before that met the dead one's hold; once it had appended, it was
        # never aborted and run again.
        assert len(live.said("APPENDED")) == 1, "the live unit of work was ended and rerun"
        assert await is_reaped(processes, crashed.pid)
        live_event = await store.events.find_one({"_id": uuid.UUID(committed[1])})
        assert live_event is not None

        async def delivered_live() -> bool:
            return any(e.position == live_event["position"] for e in delivered)

        await eventually(delivered_live, "the follower delivering the live unit of work's event")
    finally:
        writer.cancel()
        live.kill()
        await subscription.aclose()
        await asyncio.gather(writer, follower, return_exceptions=True)


async def test_a_lease_is_judged_expired_only_on_prompt_looks_spanning_two_renewals(
    connection: MongoConnectionManager, processes: Any, registry: EventRegistry
) -> None:
    """The reaper's rule, step by step, on the server: an expired lease is not enough; it must
    have been seen unchanged for two renewal intervals of looks with no pause between them
    long enough to hide a stalled server (which stalls every renewal). Then exactly the listed
    sessions are ended."""
    store = held_store(connection, registry, "transactional")
    await append_one(store)
    reaper = _Beat(liveness.attach(connection.client, connection.database_name, 3.0))
    async with connection.client.start_session() as victim:
        await victim.start_transaction()
        await store.events.insert_one(make_event_document(stream_id()), session=victim)
        await processes.insert_one(
            {"_id": "other", "pid": -2, "lease_until": _epoch(), "sessions": [victim.session_id]}
        )

        async def look() -> bool:
            """One reap round; whether the other process is still listed."""
            reaper.last_look = time.monotonic() if reaper.last_look is not None else None
            await asyncio.to_thread(reaper._reap)
            return await processes.find_one({"_id": "other"}) is not None

        def seen_since(seconds: float) -> None:
            reaper.first_seen = {k: (v[0], v[1] - seconds) for k, v in reaper.first_seen.items()}

        assert await look(), "first seen expired: not judged yet"
        seen_since(reaper.confirm)
        reaper.last_look = time.monotonic() - 2 * reaper.confirm
        await asyncio.to_thread(reaper._reap)  # a pause between looks: observed afresh
        assert await processes.find_one({"_id": "other"}) is not None
        await processes.update_one({"_id": "other"}, {"$set": {"lease_until": _epoch(1)}})
        seen_since(reaper.confirm)
        assert await look(), "renewed (still expired) meanwhile: observed afresh"
        seen_since(reaper.confirm)
        assert not await look(), "unchanged and expired across continuous looks: reaped"
        with pytest.raises(OperationFailure):
            await victim.commit_transaction()  # its session was ended
    assert reaper.registry.counters.reaped == 1
    liveness.detach(reaper.registry)
    reaper.close()


# -- what the deployment refuses, and what a lapse does --------------------------------------


async def test_a_refused_killsessions_turns_recovery_off_with_one_warning(
    connection: MongoConnectionManager,
    registry: EventRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "eventlab.liveness")
    await _fail_next(connection, "killSessions", 13, "eventlab-heartbeat")
    store = held_store(connection, registry, "transactional")
    await append_one(store)  # the first transaction lists the process: the heartbeat probes

    async def refused() -> bool:
        return not connection.liveness.active

    await eventually(refused, "the heartbeat's probe meeting the refusal")
    status = connection.liveness
    assert "killSessions" in status.reason and "Unauthorized" in status.reason
    for _ in range(3):
        await append_one(store)  # appends go on, as without crash recovery
    warnings = [r for r in caplog.records if "crash recovery is off" in r.getMessage()]
    assert len(warnings) == 1
    assert "transactionLifetimeLimitSeconds" in warnings[0].getMessage()


async def test_a_refused_registry_write_leaves_the_transaction_to_commit(
    mongo_uri: str,
    database_name: str,
    registry: EventRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "eventlab.liveness")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, appname="eventlab-refused", tz_aware=True, uuidRepresentation="standard"
    )
    try:
        async with MongoConnectionManager(client, database=database_name) as connection:
            store = held_store(connection, registry, "transactional")
            await store.count()  # bootstrapped: this client's next update is the listing
            await _fail_next(connection, "update", 13, "eventlab-refused")
            stored = await append_one(store)
            assert await store.read_stream(stored.aggregate_id)
            assert not connection.liveness.active
            assert "cannot be written" in connection.liveness.reason
            await append_one(store)
            assert await connection.database[COLLECTION].count_documents({}) == 0
    finally:
        await client.close()
    assert len([r for r in caplog.records if "crash recovery is off" in r.getMessage()]) == 1


async def test_check_liveness_asks_the_deployment(connection: MongoConnectionManager) -> None:
    status = await connection.check_liveness()
    assert status.active and status.lease == 3.0
    await _fail_next(connection, "killSessions", 13, None)
    status = await connection.check_liveness()
    assert not status.active and "Unauthorized" in status.reason


async def test_a_process_whose_entry_vanished_lists_itself_again(
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A live process presumed dead (its entry removed, as a reaper does after a lease
    lapsed) writes its entry again, with its sessions, and says so."""
    caplog.set_level(logging.WARNING, "eventlab.liveness")
    store = held_store(connection, registry, "transactional")
    await append_one(store)
    mine = {"pid": os.getpid()}
    assert await processes.count_documents(mine) == 1
    await processes.delete_many(mine)

    async def listed_again() -> bool:
        found = await processes.find_one(mine)
        return found is not None and bool(session_ids(found["sessions"]))

    await eventually(listed_again, "the heartbeat writing the entry again")
    assert any("lapsed" in r.getMessage() for r in caplog.records)
    await append_one(store)


async def test_a_dead_entry_without_sessions_ends_no_session(
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
) -> None:
    """``killSessions`` with an empty list would end every session of the user: an expired
    entry whose sessions are missing or malformed is removed and ends nothing."""
    store = held_store(connection, registry, "transactional")
    await append_one(store)
    for number, sessions in enumerate(([], "all", [{"id": 1, "$where": "1"}], None)):
        await processes.insert_one(
            {"_id": f"dead-{number}", "pid": -1, "sessions": sessions, "lease_until": _epoch()}
        )
    async with connection.client.start_session() as session:
        await session.start_transaction()
        sid = stream_id()
        await store.events.insert_one(make_event_document(sid), session=session)

        async def removed() -> bool:
            liveness.blocked(connection.client)  # as a held-up transaction keeps asking
            return await processes.count_documents({"pid": -1}) == 0

        await eventually(removed, "the expired entries removed")
        await session.commit_transaction()  # this process's open transaction was not ended
    assert await store.events.find_one({"aggregate_id": sid}) is not None


async def test_a_clean_disconnect_removes_the_entry(
    mongo_uri: str, database_name: str, registry: EventRegistry
) -> None:
    async with MongoConnectionManager(mongo_uri, database=database_name) as connection:
        await append_one(held_store(connection, registry, "transactional"))
        processes = connection.database[COLLECTION]
        assert await processes.count_documents({"pid": os.getpid()}) == 1
        registries = liveness.registries_of(connection.client)
    assert all(r.closed for r in registries)
    async with MongoConnectionManager(mongo_uri, database=database_name) as other:

        async def gone() -> bool:
            return await other.database[COLLECTION].count_documents({}) == 0

        await eventually(gone, "the closed connection's entry removed")


# -- hostile options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lease",
    ["3", True, [3], {"$gt": 0}, -3, 0, 0.5, math.nan, math.inf, 1e9, 10**30, 3601],
)
def test_process_lease_refuses_what_is_not_a_sensible_number_of_seconds(lease: Any) -> None:
    with pytest.raises(ConfigurationError, match="process_lease"):
        MongoConnectionManager("mongodb://localhost:1", process_lease=lease)


async def test_process_lease_none_turns_recovery_off(
    mongo_uri: str, database_name: str, registry: EventRegistry
) -> None:
    async with MongoConnectionManager(
        mongo_uri, database=database_name, process_lease=None
    ) as connection:
        await append_one(held_store(connection, registry, "transactional"))
        assert not connection.liveness.active
        assert "process_lease=None" in connection.liveness.reason
        assert await connection.database[COLLECTION].count_documents({}) == 0
        assert (await connection.check_liveness()).active is False


async def test_a_beat_switched_off_waits_instead_of_spinning(
    connection: MongoConnectionManager, registry: EventRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switched off with a renewal overdue, the heartbeat has nothing due for a while (it used
    to be due at once, forever: a thread spinning on the client's core), and is due again as
    soon as it is switched back on."""
    await append_one(held_store(connection, registry, "transactional"))
    beat = _Beat(liveness.attach(connection.client, connection.database_name, 3.0))
    beat.probed, beat.registry.created = True, True
    overdue = time.monotonic() + 10 * beat.interval
    monkeypatch.setattr(registry_state, "ENABLED", False)
    assert beat.due_in(overdue) == pytest.approx(beat.interval)
    assert beat.step(overdue) and beat.next_renewal == 0.0, "nothing renewed while off"
    monkeypatch.setattr(registry_state, "ENABLED", True)
    assert beat.due_in(overdue) == 0.0


# -- helpers ---------------------------------------------------------------------------------


async def _fail_next(
    connection: MongoConnectionManager, command: str, code: int, app_name: str | None
) -> None:
    data: dict[str, Any] = {"failCommands": [command], "errorCode": code}
    if app_name is not None:
        data["appName"] = app_name
    await connection.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data}
    )


def _epoch(seconds: int = 0) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def make_event_document(sid: str) -> dict[str, Any]:
    from eventlab._core.event_codec import stored_document

    return stored_document(make_event(sid, 1).with_position(10**9, _epoch()))


def test_the_eventsourcing_module_lists_its_sessions_too(
    mongo_uri: str, database_name: str
) -> None:
    """The ``eventsourcing`` recorders' transactions run through the generated sync runner:
    their sessions are listed the same way, before the transaction."""
    from eventlab.eventsourcing import MongoDatastore

    datastore = MongoDatastore(mongo_uri, database_name)
    try:
        datastore.transaction(lambda s: datastore.database["x"].insert_one({"n": 1}, session=s))
        listed = datastore.database[COLLECTION].find_one({"pid": os.getpid()})
        assert listed is not None and len(session_ids(listed["sessions"])) == 1
    finally:
        datastore.close()


# -- a reaper that dies half-way, a frozen process marked, a registry the deployment refuses ----


async def test_a_reaper_that_dies_after_marking_leaves_the_dead_entry_to_the_next(
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
    mongo_uri: str,
    database_name: str,
) -> None:
    """A reaper marks a dead process's entry before it ends the sessions and deletes the entry
    only after: one killed in between (the entry marked, the sessions alive) leaves the entry
    for the next reaper, which ends them, instead of a deleted entry nobody can reap."""
    store = held_store(connection, registry, "transactional")
    await append_one(store)
    child = WriterChild(mongo_uri, database_name, "hold")
    held = int((await child.line("HOLDING"))[1])
    child.kill()
    marked = await processes.update_one(
        {"pid": child.pid}, {"$set": {"reaped_by": "a reaper killed before killSessions"}}
    )
    assert marked.matched_count == 1
    after = await append_one(store)  # held up until the next reaper ends the dead sessions
    assert after.position == held
    assert await is_reaped(processes, child.pid)


async def test_a_frozen_process_marked_by_a_reaper_knows_and_lists_itself_again(
    connection: MongoConnectionManager,
    registry: EventRegistry,
    processes: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A process only frozen past its lease, whose entry a reaper has marked, does not renew
    the marked entry as if nothing happened: it says its sessions may have been ended and
    writes its entry anew, unmarked (so the reaper's delete spares it)."""
    caplog.set_level(logging.WARNING, "eventlab.liveness")
    store = held_store(connection, registry, "transactional")
    await append_one(store)
    mine = {"pid": os.getpid()}
    await processes.update_many(mine, {"$set": {"reaped_by": "another process"}})

    async def unmarked() -> bool:
        found = await processes.find_one(mine)
        return found is not None and "reaped_by" not in found

    await eventually(unmarked, "the heartbeat writing the marked entry anew")
    assert any("lapsed" in r.getMessage() for r in caplog.records)
    await append_one(store)
    found = await processes.find_one(mine)
    assert found is not None and session_ids(found["sessions"])


async def test_a_registry_the_deployment_refuses_to_store_turns_recovery_off_and_says_so(
    mongo_uri: str,
    database_name: str,
    registry: EventRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registry collection whose every write is refused (here a validator nothing passes;
    a role without write access is the same to eventlab) is not claimed as active: recovery
    is turned off with its one warning, check_liveness says why, and appends go on."""
    caplog.set_level(logging.WARNING, "eventlab.liveness")
    async with MongoConnectionManager(mongo_uri, database=database_name) as connection:
        await connection.database.create_collection(
            COLLECTION, validator={"never": {"$exists": True}}, validationAction="error"
        )
        store = held_store(connection, registry, "transactional")
        for _ in range(3):
            await append_one(store)
        assert not connection.liveness.active
        assert "cannot be written" in connection.liveness.reason
        status = await connection.check_liveness()
        assert not status.active and status.reason == connection.liveness.reason
        assert await connection.database[COLLECTION].count_documents({}) == 0
    assert len([r for r in caplog.records if "crash recovery is off" in r.getMessage()]) == 1


async def test_check_liveness_reports_a_server_refusal_as_what_it_is(
    mongo_uri: str, database_name: str
) -> None:
    """A reachable server that refuses the probe's write is not called unreachable."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, appname="eventlab-probe-refused", tz_aware=True, uuidRepresentation="standard"
    )
    try:
        async with MongoConnectionManager(client, database=database_name) as connection:
            await connection.connect()
            # BadValue: neither a refusal of the registry nor a network failure.
            await _fail_next(connection, "update", 2, "eventlab-probe-refused")
            with pytest.raises(EventlabError) as raised:
                await connection.check_liveness()
            assert not isinstance(raised.value, ConnectionFailedError)
            assert "unreachable" not in str(raised.value)
    finally:
        await client.close()
