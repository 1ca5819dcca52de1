"""The concurrency probes of ``eventlab check`` that need no server kill: racing writers on one
stream, a DCB capacity race, a follower over concurrent writers; and what the deployment
offers that eventlab uses when it can: ``killSessions`` for a user's own sessions, change
streams, fail points."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pymongo.errors import PyMongoError

from .._core.errors import AppendConditionError, ConcurrencyError, EventlabError
from .._core.records import ExpectedVersion, StoredEvent
from .._dcb.records import TaggedEvent
from .._mongo.connection import MongoConnectionManager
from .._mongo.dcb import MongoDCBStore
from .._mongo.event_store import MongoEventStore
from ..ports import PositionStrategy
from ..samples.courses import (
    STUDENT_JOINED,
    decide_join,
    join_boundary,
    register_course,
    register_student,
)
from ._deployment import reason
from ._verdicts import Verdict

WRITERS = 8
STALL = 60.0
"""Seconds after which a probe that makes no progress is reported as stalled."""


def _event(stream: str, n: int = 0) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Probed",
        aggregate_id=stream,
        aggregate_type="Probe",
        version=1,
        payload={"n": n},
        occurred_at=datetime.now(UTC),
    )


def _store(conn: MongoConnectionManager, strategy: PositionStrategy) -> MongoEventStore:
    tag = f"probe_{strategy[:3]}"
    return MongoEventStore(
        conn,
        positions=strategy,
        events_collection=f"{tag}_events",
        counters_collection=f"{tag}_counters",
    )


async def racing_writers(conn: MongoConnectionManager) -> Verdict:
    """Writers racing at one expected version: exactly one wins, the others get
    ConcurrencyError; writers appending with ANY all land, versions contiguous."""
    what = "racing writers on one stream"
    for strategy in ("transactional", "preallocated"):
        store = _store(conn, strategy)
        await store.append("race", [_event("race")], 0)
        outcomes = await asyncio.gather(
            *(store.append("race", [_event("race", n)], 1) for n in range(WRITERS)),
            return_exceptions=True,
        )
        won = sum(isinstance(o, list) for o in outcomes)
        lost = sum(isinstance(o, ConcurrencyError) for o in outcomes)
        if (won, lost) != (1, WRITERS - 1):
            return Verdict(what, "failed", f"{strategy}: {won} won and {lost} conflicted")
        await asyncio.gather(
            *(store.append("any", [_event("any", n)], ExpectedVersion.ANY) for n in range(WRITERS))
        )
        versions = [e.version for e in await store.read_stream("any")]
        if versions != list(range(1, WRITERS + 1)):
            return Verdict(what, "failed", f"{strategy}: ANY writers left versions {versions}")
    return Verdict(what, "held", f"{WRITERS} at one version: 1 won; {WRITERS} ANY: 1..{WRITERS}")


async def capacity_race(conn: MongoConnectionManager) -> Verdict:
    """Students deciding at once to join a course with one place left: exactly one joins."""
    what = "DCB capacity race"
    dcb = MongoDCBStore(_store(conn, "transactional"))
    await register_course(dcb, "probe", places=1)
    students = [f"s{n}" for n in range(WRITERS)]
    for student in students:
        await register_student(dcb, student, max_courses=2)
    ready = asyncio.Barrier(WRITERS)

    async def decide(student: str) -> str:
        read = await dcb.read(join_boundary(student, "probe"))
        decide_join(read.events, student, "probe")
        await ready.wait()
        joined = TaggedEvent(
            STUDENT_JOINED,
            {"student_id": student, "course_id": "probe"},
            (f"student:{student}", "course:probe"),
        )
        try:
            await dcb.append([joined], read.condition())
        except AppendConditionError:
            return "refused"
        return "joined"

    outcomes = Counter(await asyncio.gather(*(decide(s) for s in students)))
    if outcomes != {"joined": 1, "refused": WRITERS - 1}:
        return Verdict(what, "failed", f"a course of 1 place: {dict(outcomes)}")
    return Verdict(what, "held", f"{WRITERS} students, 1 place: 1 joined, {WRITERS - 1} refused")


async def follower_over_writers(conn: MongoConnectionManager) -> Verdict:
    """A live subscription while writers append in parallel: every event once, in position
    order, on both strategies."""
    what = "a follower over concurrent writers"
    per_writer = 25
    for strategy in ("transactional", "preallocated"):
        problem = await _follow_writers(_store(conn, strategy), per_writer)
        if problem:
            return Verdict(what, "failed", f"{strategy}: {problem}")
    return Verdict(what, "held", f"{WRITERS} writers x {per_writer}, both strategies: each once")


async def _follow_writers(store: MongoEventStore, per_writer: int) -> str | None:
    await store.append("start", [_event("start")], ExpectedVersion.ANY)
    head = (await store.log.head()).position
    wanted = WRITERS * per_writer
    seen: list[StoredEvent] = []

    async def write(n: int) -> None:
        for k in range(per_writer):
            await store.append(f"w{n}", [_event(f"w{n}", k)], ExpectedVersion.ANY)

    async with store.subscribe(start=head, poll_interval=0.05, gap_timeout=0.5) as live:

        async def follow() -> None:
            async for event in live:
                seen.append(event)
                if len(seen) == wanted:
                    return

        try:
            async with asyncio.timeout(STALL):
                await asyncio.gather(follow(), *(write(n) for n in range(WRITERS)))
        except TimeoutError:
            return f"stalled after {len(seen)} of {wanted} events"
    positions = [e.position or 0 for e in seen]
    if positions != sorted(set(positions)):
        return "events out of position order, or repeated"
    return None


async def kill_own_session(conn: MongoConnectionManager, uri: str) -> Verdict:
    """``killSessions`` of one of this user's own sessions, holding an open transaction: how
    a consumer's successor ends a dead predecessor's transaction at once."""
    what = "killSessions of the user's own sessions"
    client = conn.client
    async with client.start_session() as session:
        await session.start_transaction()
        await conn.database["probe_sessions"].insert_one({"n": 1}, session=session)
        try:
            await client.admin.command("killSessions", [session.session_id])
        except PyMongoError as exc:
            return Verdict(
                what,
                "cannot",
                f"refused ({reason(exc, uri)}): a successor waits for a dead consumer's open "
                "transaction to expire (about a minute)",
            )
        finally:
            # Ended on the server: its transaction is gone, as it should be.
            if session.in_transaction:
                with contextlib.suppress(PyMongoError):
                    await session.abort_transaction()
    return Verdict(what, "held", "a successor ends a dead consumer's transaction at once")


async def change_streams(conn: MongoConnectionManager, uri: str) -> Verdict:
    """A change stream on a collection sees an insert: followers are woken, not polling."""
    what = "change streams"
    collection = conn.database["probe_changes"]
    try:
        async with await collection.watch() as stream:
            await collection.insert_one({"n": 1})
            async with asyncio.timeout(STALL):
                while (await stream.try_next()) is None:
                    pass
    except (PyMongoError, TimeoutError) as exc:
        return Verdict(
            what, "cannot", f"none ({reason(exc, uri)}): followers poll every poll_interval"
        )
    return Verdict(what, "held", "followers are woken by appends")


async def fail_points(conn: MongoConnectionManager, uri: str) -> Verdict:
    """Whether ``configureFailPoint`` is available (eventlab's own fault-injection tests)."""
    what = "fail points (test commands)"
    try:
        await conn.client.admin.command("configureFailPoint", "failCommand", mode="off")
    except PyMongoError as exc:
        return Verdict(
            what,
            "cannot",
            f"not enabled ({reason(exc, uri)}): only eventlab's fault-injection tests need them",
        )
    return Verdict(what, "held", "available")


Probe = Callable[[MongoConnectionManager, str], Awaitable[Verdict]]


def probes() -> list[tuple[str, Probe]]:
    return [
        ("racing writers on one stream", lambda conn, uri: racing_writers(conn)),
        ("DCB capacity race", lambda conn, uri: capacity_race(conn)),
        ("a follower over concurrent writers", lambda conn, uri: follower_over_writers(conn)),
        ("killSessions of the user's own sessions", kill_own_session),
        ("change streams", change_streams),
        ("fail points (test commands)", fail_points),
    ]


async def run_probes(conn: MongoConnectionManager, uri: str) -> list[Verdict]:
    verdicts = []
    for what, probe in probes():
        try:
            verdicts.append(await probe(conn, uri))
        except EventlabError as exc:
            verdicts.append(Verdict(what, "failed", reason(exc, uri)))
        except Exception as exc:  # a probe's own failure is a verdict, never a traceback
            verdicts.append(Verdict(what, "failed", f"{type(exc).__name__}: {reason(exc, uri)}"))
    return verdicts
