"""The course-booking decision of docs/dcb.md under forced interleavings, on MongoDB and in
memory: another student joins at a named moment of Ada's read (race points
``dcb.read.head_taken``, ``dcb.read.between_items``), and her condition must still refuse what
her read did not see, so a course of one place never holds two students. The ``eventsourcing``
recorder (sync) is driven the same way. (The port's own interleavings, for any backend, are in
:class:`eventlab.contracts.DCBContract`.)"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from eventsourcing.dcb.api import DCBAppendCondition, DCBEvent, DCBQuery, DCBQueryItem
from eventsourcing.persistence import IntegrityError

from eventlab import AppendConditionError
from eventlab._core import races as _races
from eventlab.dcb import DCBStore, MongoDCBStore, Query, TaggedEvent
from eventlab.eventsourcing import MongoDatastore, MongoDCBRecorder
from eventlab.memory import MemoryDCBStore, MemoryEventStore
from eventlab.samples.courses import (
    STUDENT_JOINED,
    decide_join,
    join_boundary,
    join_course,
    register_course,
    register_student,
)


@pytest.fixture(params=["mongodb", "memory"])
def dcb(request: pytest.FixtureRequest) -> DCBStore:
    if request.param == "memory":
        return MemoryDCBStore(MemoryEventStore())
    return MongoDCBStore(request.getfixturevalue("tx_store"))


def course_first(student: str, course: str) -> Query:
    """The join boundary with the course's item read first, the student's second."""
    return Query(tuple(reversed(join_boundary(student, course).items)))


def joined(student: str, course: str) -> TaggedEvent:
    return TaggedEvent(
        STUDENT_JOINED,
        {"student_id": student, "course_id": course},
        (f"student:{student}", f"course:{course}"),
    )


async def students_of(dcb: DCBStore, course: str) -> list[str]:
    read = await dcb.read(Query.of(types=[STUDENT_JOINED], tags=[f"course:{course}"]))
    return [e.payload["student_id"] for e in read.events]


async def a_course_of_one_place(dcb: DCBStore) -> None:
    await register_course(dcb, "c1", places=1)
    await register_course(dcb, "c2", places=5)
    await register_student(dcb, "ada", max_courses=2)
    await register_student(dcb, "bob", max_courses=2)


async def decide_at(
    dcb: DCBStore, point: str, others: Callable[[], Awaitable[Any]], **read: Any
) -> None:
    """Ada decides to join c1 while ``others`` act at ``point`` of her read; her append must
    be refused, and the course of one place keeps one student."""
    async with _races.acting_at(point, others) as race:
        before = race.reached_count
        seen = await dcb.read(course_first("ada", "c1"), **read)
    assert race.reached_count == before + 1, "the interleaving did not happen"
    decide_join(seen.events, "ada", "c1")  # what she saw leaves a place
    with pytest.raises(AppendConditionError, match="course:c1"):
        await dcb.append([joined("ada", "c1")], seen.condition())
    assert await students_of(dcb, "c1") == ["bob"]


@pytest.mark.parametrize("limit", [None, 10])
async def test_an_event_appended_between_the_items_of_a_read_is_not_missed(
    dcb: DCBStore, limit: int | None
) -> None:
    """Between Ada's two item reads Bob joins c1 (matching the first item, already read) and
    Ada joins c2 (matching the second, not yet read, at a higher position). The read reports
    no head past Bob's join, so the condition refuses Ada: the course never holds two."""
    await a_course_of_one_place(dcb)

    async def others_decide() -> None:
        await join_course(dcb, "bob", "c1")
        await join_course(dcb, "ada", "c2")

    await decide_at(dcb, "dcb.read.between_items", others_decide, limit=limit)


async def test_an_event_appended_after_the_head_was_taken_is_left_to_the_condition(
    dcb: DCBStore,
) -> None:
    await a_course_of_one_place(dcb)

    async def bob_joins() -> None:
        await join_course(dcb, "bob", "c1")

    await decide_at(dcb, "dcb.read.head_taken", bob_joins)


# -- the eventsourcing recorder (sync) -------------------------------------------------------


@pytest.fixture
def recorder(mongo_uri: str) -> Iterator[MongoDCBRecorder]:
    database = f"dcb_{uuid.uuid4().hex[:12]}"
    datastore = MongoDatastore(mongo_uri, database)
    recorder = MongoDCBRecorder(datastore, "dcb_events")
    recorder.create_table()
    try:
        yield recorder
    finally:
        datastore.client.drop_database(database)
        datastore.close()


@pytest.mark.parametrize("limit", [None, 10])
def test_the_recorder_misses_nothing_appended_between_items(
    recorder: MongoDCBRecorder, limit: int | None
) -> None:
    """The same interleaving through the ``eventsourcing`` recorder."""
    course = DCBQueryItem(types=["Registered", "Joined"], tags=["course:c1"])
    student = DCBQueryItem(types=["Registered", "Joined"], tags=["student:ada"])
    query = DCBQuery([course, student])
    recorder.append([DCBEvent("Registered", b'{"places": 1}', ["course:c1"])])
    recorder.append([DCBEvent("Registered", b"{}", ["student:ada"])])

    def others_decide() -> None:
        recorder.append([DCBEvent("Joined", b"{}", ["course:c1", "student:bob"])])
        recorder.append([DCBEvent("Joined", b"{}", ["course:c2", "student:ada"])])

    with _races.acting_at_sync("dcb.read.between_items", others_decide) as race:
        before = race.reached_count
        response = recorder.read(query, limit=limit)
        seen = list(response)
    assert race.reached_count == before + 1
    assert not [e for e in seen if e.event.type == "Joined" and "course:c1" in e.event.tags]
    ada = DCBEvent("Joined", b"{}", ["course:c1", "student:ada"])
    with pytest.raises(IntegrityError):  # the course looked free: the condition refuses
        recorder.append([ada], DCBAppendCondition(query, after=response.head))
    in_c1 = recorder.read(DCBQuery([DCBQueryItem(types=["Joined"], tags=["course:c1"])]))
    assert [e.event.tags for e in in_c1] == [["course:c1", "student:bob"]]
