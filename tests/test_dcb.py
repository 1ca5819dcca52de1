"""Dynamic Consistency Boundaries on MongoDB (eventlab.dcb) beyond the port's contract suite
(eventlab.contracts.DCBContract, run by every backend): the tags index, sixteen writers racing
on the course-booking sample, hostile query parts, tags in frames and exports, and the example
of docs/dcb.md."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from typing import Any

import pytest

from eventlab import AppendConditionError, InvalidSpecificationError, MongoEventStore
from eventlab.dcb import (
    AppendCondition,
    MongoDCBStore,
    Query,
    QueryItem,
    TaggedEvent,
)
from eventlab.samples.courses import (
    STUDENT_JOINED,
    EnrolmentRefused,
    join_course,
    register_course,
    register_student,
)

from .conftest import make_event, put, stream_id


def tagged(event_type: str, *tags: str, **payload: Any) -> TaggedEvent:
    return TaggedEvent(event_type, payload or {"n": 1}, tags)


async def test_dcb_events_are_log_events_with_their_tags(tx_store: MongoEventStore) -> None:
    dcb = MongoDCBStore(tx_store)
    (first, second) = await dcb.append([tagged("Joined", "course:c1", "student:s1"), tagged("X")])
    logged = await tx_store.read_all().to_list()
    assert [(e.event_id, e.tags, e.aggregate_id, e.version) for e in logged] == [
        (first.event_id, ("course:c1", "student:s1"), "dcb:1", 1),
        (second.event_id, (), "dcb:2", 1),
    ]
    assert "dcb_tags_position" in await tx_store.log.index_names()


async def test_sixteen_writers_racing_never_break_an_invariant(tx_store: MongoEventStore) -> None:
    """Overlapping and disjoint boundaries at random: every course within its places, every
    student within their limit, nobody twice on a course, in the stored events."""
    dcb = MongoDCBStore(tx_store)
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


async def _enrolments(dcb: MongoDCBStore) -> dict[str, int]:
    joins = await dcb.read(Query.of(types=[STUDENT_JOINED]))
    return dict(Counter(e.payload["course_id"] for e in joins.events))


# -- hostile inputs: a typed error that names the problem, and nothing written ---------------

OPERATOR: Any = {"$ne": None}
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

    dcb = MongoDCBStore(tx_store)
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
