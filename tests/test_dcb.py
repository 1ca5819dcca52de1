"""Dynamic Consistency Boundaries in eventlab's async API (eventlab.dcb): queries by types and
tags, conditional appends, exactly one winner per conflicting decision under concurrency,
disjoint boundaries never refused, the preallocated strategy refused, hostile inputs refused
with nothing written."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from typing import Any

import pytest

from eventlab import (
    AppendConditionError,
    ConfigurationError,
    DataError,
    DocumentTooLargeError,
    EventlabError,
    InvalidSpecificationError,
    MongoConnectionManager,
    MongoEventStore,
    SerializationError,
)
from eventlab.dcb import (
    DCB_AGGREGATE_TYPE,
    AppendCondition,
    DCBStore,
    Query,
    QueryItem,
    TaggedEvent,
)
from eventlab.samples.courses import (
    STUDENT_JOINED,
    EnrolmentRefused,
    decide_join,
    join_boundary,
    join_course,
    register_course,
    register_student,
)

from .conftest import make_event, put, stream_id


def tagged(event_type: str, *tags: str, **payload: Any) -> TaggedEvent:
    return TaggedEvent(event_type, payload or {"n": 1}, tags)


async def test_read_by_types_and_tags_and_append_under_a_condition(
    tx_store: MongoEventStore,
) -> None:
    dcb = DCBStore(tx_store)
    await put(tx_store, [make_event(stream_id(), 1)])  # a stream event beside them
    await dcb.append([tagged("A", "x", "y"), tagged("B", "x"), tagged("A", "z")])
    by_tag = await dcb.read(Query.of(tags=["x"]))
    assert [(e.event_type, e.tags) for e in by_tag.events] == [("A", ("x", "y")), ("B", ("x",))]
    assert by_tag.head == 4
    both = await dcb.read(Query.of(types=["A"], tags=["x", "y"]))
    assert [e.position for e in both.events] == [2]
    either = await dcb.read(Query.of(types=["B"]) | Query.of(tags=["z"]))
    assert [e.position for e in either.events] == [3, 4]
    assert len((await dcb.read()).events) == 4  # no items: every event, stream ones too
    page = await dcb.read(Query.of(types=["A"]), limit=1)
    assert [e.position for e in page.events] == [2] and page.head == 2

    # Nothing matching "x" after the read: the append goes through.
    (stored,) = await dcb.append([tagged("C", "x")], by_tag.condition())
    assert stored.position == 5 and stored.aggregate_type == DCB_AGGREGATE_TYPE
    # The same condition again: event 5 now matches it, so nothing is written.
    with pytest.raises(AppendConditionError, match="#5 \\(C; x\\)") as refused:
        await dcb.append([tagged("D", "x")], by_tag.condition())
    assert refused.value.event.position == 5
    assert await tx_store.count() == 5
    # Events outside the condition's query do not refuse it.
    await dcb.append([tagged("E", "w")], AppendCondition(Query.of(tags=["q"]), after=0))


async def test_dcb_events_are_log_events_with_their_tags(tx_store: MongoEventStore) -> None:
    dcb = DCBStore(tx_store)
    (first, second) = await dcb.append([tagged("Joined", "course:c1", "student:s1"), tagged("X")])
    logged = await tx_store.read_all().to_list()
    assert [(e.event_id, e.tags, e.aggregate_id, e.version) for e in logged] == [
        (first.event_id, ("course:c1", "student:s1"), "dcb:1", 1),
        (second.event_id, (), "dcb:2", 1),
    ]
    assert "dcb_tags_position" in await tx_store.log.index_names()


async def test_a_retried_append_returns_what_the_first_one_stored(
    tx_store: MongoEventStore,
) -> None:
    dcb = DCBStore(tx_store)
    events = [tagged("A", "k"), tagged("B", "k")]
    condition = AppendCondition(Query.of(tags=["k"]), after=0)
    first = await dcb.append(events, condition)
    again = await dcb.append(events, condition)  # as after an unknown commit outcome
    assert [e.position for e in again] == [e.position for e in first] == [1, 2]
    assert await tx_store.count() == 2
    reused = [TaggedEvent("Other", {"n": 2}, ("k",), event_id=events[0].event_id)]
    with pytest.raises(AppendConditionError):
        await dcb.append(reused, condition)
    with pytest.raises(EventlabError, match="already stored"):
        await dcb.append(reused)
    assert await tx_store.count() == 2


async def test_preallocated_positions_are_refused_and_nothing_is_written(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await put(store, [make_event(stream_id(), 1)])
    dcb = DCBStore(store)
    for attempt in (dcb.append([tagged("A", "t")]), dcb.read(Query.of(tags=["t"]))):
        with pytest.raises(ConfigurationError, match=r"'transactional'.*'preallocated'"):
            await attempt
    assert await store.count() == 1


async def test_conflicting_decisions_have_exactly_one_winner(tx_store: MongoEventStore) -> None:
    """Sixteen students read the same course with one place left, all decide yes and append
    at once: one joins, fifteen are refused by the condition and nothing else is stored."""
    dcb = DCBStore(tx_store)
    await register_course(dcb, "c1", places=3)
    students = [f"s{i}" for i in range(18)]
    for student in students:
        await register_student(dcb, student, max_courses=5)
    await join_course(dcb, "s16", "c1")
    await join_course(dcb, "s17", "c1")
    ready = asyncio.Barrier(16)

    async def decide(student: str) -> str:
        read = await dcb.read(join_boundary(student, "c1"))
        decide_join(read.events, student, "c1")  # every one sees a place left
        await ready.wait()
        joined = TaggedEvent(
            STUDENT_JOINED,
            {"student_id": student, "course_id": "c1"},
            (f"student:{student}", "course:c1"),
        )
        try:
            await dcb.append([joined], read.condition())
        except AppendConditionError:
            return "refused"
        return "joined"

    outcomes = Counter(await asyncio.gather(*(decide(s) for s in students[:16])))
    assert outcomes == {"joined": 1, "refused": 15}
    assert await _enrolments(dcb) == {"c1": 3}


async def test_disjoint_boundaries_never_refuse_each_other(tx_store: MongoEventStore) -> None:
    dcb = DCBStore(tx_store)
    for i in range(16):
        await register_course(dcb, f"c{i}", places=1)
        await register_student(dcb, f"s{i}", max_courses=1)
    ready = asyncio.Barrier(16)

    async def decide(i: int) -> None:
        read = await dcb.read(join_boundary(f"s{i}", f"c{i}"))
        await ready.wait()  # all appends at once: they contend only on the counter
        joined = TaggedEvent(
            STUDENT_JOINED,
            {"student_id": f"s{i}", "course_id": f"c{i}"},
            (f"student:s{i}", f"course:c{i}"),
        )
        await dcb.append([joined], read.condition())

    await asyncio.gather(*(decide(i) for i in range(16)))  # none raises
    assert await _enrolments(dcb) == {f"c{i}": 1 for i in range(16)}


async def test_sixteen_writers_racing_never_break_an_invariant(tx_store: MongoEventStore) -> None:
    """Overlapping and disjoint boundaries at random: every course within its places, every
    student within their limit, nobody twice on a course, in the stored events."""
    dcb = DCBStore(tx_store)
    places = {f"c{i}": 3 for i in range(5)}
    limits = {f"s{i}": 2 for i in range(12)}
    for course, n in places.items():
        await register_course(dcb, course, n)
    for student, n in limits.items():
        await register_student(dcb, student, n)
    tally: Counter[str] = Counter()

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            student, course = rng.choice(list(limits)), rng.choice(list(places))
            try:
                await join_course(dcb, student, course)
                tally["joined"] += 1
            except AppendConditionError:
                tally["raced"] += 1
            except EnrolmentRefused:
                tally["refused"] += 1

    await asyncio.gather(*(writer(seed) for seed in range(16)))
    joins = [e for e in await tx_store.read_all().to_list() if e.event_type == STUDENT_JOINED]
    pairs = [(e.payload["student_id"], e.payload["course_id"]) for e in joins]
    assert len(pairs) == len(set(pairs)) == tally["joined"], "someone joined a course twice"
    per_course = Counter(course for _, course in pairs)
    per_student = Counter(student for student, _ in pairs)
    assert all(per_course[c] <= n for c, n in places.items()), per_course
    assert all(per_student[s] <= n for s, n in limits.items()), per_student
    assert tally["raced"] > 0, "the writers never raced: the test proves nothing"


async def _enrolments(dcb: DCBStore) -> dict[str, int]:
    joins = await dcb.read(Query.of(types=[STUDENT_JOINED]))
    return dict(Counter(e.payload["course_id"] for e in joins.events))


# -- hostile inputs: a typed error that names the problem, and nothing written ---------------

OPERATOR: Any = {"$ne": None}
Invalid, Serial, TooLarge, Data = (
    InvalidSpecificationError,
    SerializationError,
    DocumentTooLargeError,
    DataError,
)
HOSTILE: list[tuple[str, Any, str]] = [
    ("tag as operator", lambda: QueryItem(tags=(OPERATOR,)), "tag"),  # type: ignore[arg-type]
    ("tags as a bare string", lambda: QueryItem(tags="course:c1"), "tags must be a list"),  # type: ignore[arg-type]
    ("tags as operator dict", lambda: QueryItem(tags=OPERATOR), "tags must be a list"),  # type: ignore[arg-type]
    ("type as operator", lambda: QueryItem(types=({"$gt": ""},)), "event type"),  # type: ignore[arg-type]
    ("tag with NUL", lambda: QueryItem(tags=("a\x00b",)), "tag"),
    ("tag of 10k characters", lambda: QueryItem(tags=("t" * 10_000,)), "at most 512"),
    ("101 tags", lambda: QueryItem(tags=tuple(f"t{i}" for i in range(101))), "at most 100"),
    ("101 items", lambda: Query(tuple(QueryItem(tags=("t",)) for _ in range(101))), "items"),
    ("items not QueryItems", lambda: Query(({"tags": ["t"]},)), "QueryItems"),  # type: ignore[arg-type]
    ("negative after", lambda: AppendCondition(Query(), -1), "after must be a position"),
    ("huge after", lambda: AppendCondition(Query(), 2**64), "after must be a position"),
    ("after as bool", lambda: AppendCondition(Query(), True), "after must be a position"),
    ("after as operator", lambda: AppendCondition(Query(), OPERATOR), "after"),  # type: ignore[arg-type]
    ("condition query as dict", lambda: AppendCondition(OPERATOR), "must be a Query"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("label", "build", "named"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_query_parts_are_refused(label: str, build: Any, named: str) -> None:
    with pytest.raises(InvalidSpecificationError, match=named):
        build()


HOSTILE_CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("events not a list", lambda d: d.append(tagged("A")), Invalid, "list"),
    ("no events", lambda d: d.append([]), Invalid, "1 to 10000"),
    ("10,001 events", lambda d: d.append([tagged("A")] * 10_001), Invalid, "1 to"),
    ("a dict as event", lambda d: d.append([{"event_type": "A"}]), Invalid, "not a TaggedEvent"),
    ("type operator", lambda d: d.append([TaggedEvent(OPERATOR, {})]), Invalid, "event type"),
    ("tags operator", lambda d: d.append([TaggedEvent("A", {}, OPERATOR)]), Invalid, "tags must"),
    ("payload a list", lambda d: d.append([TaggedEvent("A", [1])]), EventlabError, "payload must"),
    ("int beyond 64 bits", lambda d: d.append([TaggedEvent("A", {"n": 2**70})]), Serial, "64-bit"),
    ("17 MB", lambda d: d.append([TaggedEvent("A", {"s": "x" * 17_000_000})]), TooLarge, "bytes"),
    ("condition a dict", lambda d: d.append([tagged("A")], {"after": 0}), Invalid, "Condition"),
    ("query as operator", lambda d: d.read(OPERATOR), Invalid, "must be a Query"),
    ("read after -1", lambda d: d.read(Query(), after=-1), Invalid, "after"),
    ("read after huge", lambda d: d.read(Query(), after=2**70), Invalid, "after"),
    ("limit 0", lambda d: d.read(Query(), limit=0), Invalid, "limit"),
    ("limit as operator", lambda d: d.read(Query(), limit=OPERATOR), Invalid, "limit"),
    ("id an operator", lambda d: d.append([TaggedEvent("A", {}, event_id=OPERATOR)]), Data, "_id"),
]


@pytest.mark.parametrize(
    ("label", "call", "error", "named"), HOSTILE_CALLS, ids=[h[0] for h in HOSTILE_CALLS]
)
async def test_hostile_calls_are_refused_and_nothing_is_written(
    tx_store: MongoEventStore, label: str, call: Any, error: type[Exception], named: str
) -> None:
    dcb = DCBStore(tx_store)
    await dcb.append([tagged("Before", "t")])
    with pytest.raises(error, match=named):
        await call(dcb)
    assert await tx_store.count() == 1
    assert (await dcb.read()).head == 1


def test_a_query_matches_in_python_as_it_does_on_the_server() -> None:
    event = make_event("s", 1, "A")
    joined = type(event)(**{**_fields(event), "tags": ("x", "y")})
    assert Query.of(types=["A"], tags=["x"]).matches(joined)
    assert not Query.of(types=["A"], tags=["x", "z"]).matches(joined)
    assert (Query.of(types=["B"]) | Query.of(tags=["y"])).matches(joined)
    assert Query().matches(event) and not Query.of(tags=["x"]).matches(event)
    assert (Query() | Query.of(tags=["q"])) == Query()


def _fields(event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__slots__}


def test_tagged_events_get_their_own_ids() -> None:
    assert tagged("A").event_id != tagged("A").event_id
    assert isinstance(tagged("A").event_id, uuid.UUID)


async def test_tags_reach_frames_and_survive_an_export_round_trip(
    tx_store: MongoEventStore, tmp_path: Any
) -> None:
    from eventlab.workbench import events_frame
    from eventlab.workbench._files import EventFileWriter, iter_event_chunks

    dcb = DCBStore(tx_store)
    await put(tx_store, [make_event(stream_id(), 1)])
    await dcb.append([tagged("Joined", "course:c1", "student:s1")])
    events = await tx_store.read_all().to_list()
    frame = events_frame(events)
    assert list(frame["tags"]) == [None, ["course:c1", "student:s1"]]
    for file_format in ("jsonl", "parquet"):
        path = tmp_path / f"events.{file_format}"
        with EventFileWriter(path, file_format) as out:  # type: ignore[arg-type]
            out.write(events)
        (back,) = list(iter_event_chunks(path, file_format))  # type: ignore[arg-type]
        assert [e.tags for e in back] == [(), ("course:c1", "student:s1")], file_format


def test_the_example_in_the_docs_runs_as_written() -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "dcb.md").read_text()
    (block,) = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "append condition failed: event #2 (StudentJoined; course:c1, student:ada)" in (
        done.stdout
    )
