"""Course booking with Dynamic Consistency Boundaries: a course takes at most ``places``
students, a student joins at most ``max_courses`` courses, and nobody joins a course twice.

Two invariants that cross entities, kept without a Course or Student aggregate sized to hold
them: each decision reads the events of the one student and the one course it is about, and
appends on the condition that none of them changed since (docs/dcb.md).
"""

from __future__ import annotations

from .._core.records import StoredEvent
from .._dcb.records import Query, QueryItem, TaggedEvent
from ..ports import DCBStore

COURSE_REGISTERED = "CourseRegistered"
STUDENT_REGISTERED = "StudentRegistered"
STUDENT_JOINED = "StudentJoinedCourse"


class EnrolmentRefused(Exception):
    """The decision says no (the course is full, the student has enough, ...)."""


def course_tag(course_id: str) -> str:
    return f"course:{course_id}"


def student_tag(student_id: str) -> str:
    return f"student:{student_id}"


def join_boundary(student_id: str, course_id: str) -> Query:
    """What deciding "may this student join this course" reads: the student's registration
    and courses, and the course's registration and students."""
    return Query(
        (
            QueryItem((STUDENT_REGISTERED, STUDENT_JOINED), (student_tag(student_id),)),
            QueryItem((COURSE_REGISTERED, STUDENT_JOINED), (course_tag(course_id),)),
        )
    )


async def register_course(dcb: DCBStore, course_id: str, places: int) -> StoredEvent:
    """A new course; :class:`EnrolmentRefused` if the id is taken (and
    :class:`~eventlab.AppendConditionError` if it was taken while deciding)."""
    payload = {"course_id": course_id, "places": places}
    return await _register(dcb, COURSE_REGISTERED, course_tag(course_id), payload)


async def register_student(dcb: DCBStore, student_id: str, max_courses: int) -> StoredEvent:
    """A new student; :class:`EnrolmentRefused` if the id is taken."""
    payload = {"student_id": student_id, "max_courses": max_courses}
    return await _register(dcb, STUDENT_REGISTERED, student_tag(student_id), payload)


async def _register(
    dcb: DCBStore, event_type: str, tag: str, payload: dict[str, object]
) -> StoredEvent:
    read = await dcb.read(Query.of(types=[event_type], tags=[tag]))
    if read.events:
        raise EnrolmentRefused(f"{tag} is registered already")
    (event,) = await dcb.append([TaggedEvent(event_type, payload, (tag,))], read.condition())
    return event


def decide_join(events: list[StoredEvent], student_id: str, course_id: str) -> None:
    """Raises :class:`EnrolmentRefused` unless the student may join the course, given the
    events of the join boundary."""
    places = max_courses = None
    students: set[str] = set()
    courses: set[str] = set()
    for event in events:
        if event.event_type == COURSE_REGISTERED:
            places = event.payload["places"]
        elif event.event_type == STUDENT_REGISTERED:
            max_courses = event.payload["max_courses"]
        elif event.event_type == STUDENT_JOINED:
            if event.payload["course_id"] == course_id:
                students.add(event.payload["student_id"])
            if event.payload["student_id"] == student_id:
                courses.add(event.payload["course_id"])
    if places is None or max_courses is None:
        raise EnrolmentRefused(f"{course_id} or {student_id} is not registered")
    if student_id in students:
        raise EnrolmentRefused(f"{student_id} already joined {course_id}")
    if len(students) >= places:
        raise EnrolmentRefused(f"{course_id} is full ({places} places)")
    if len(courses) >= max_courses:
        raise EnrolmentRefused(f"{student_id} has joined {max_courses} courses already")


async def join_course(dcb: DCBStore, student_id: str, course_id: str) -> StoredEvent:
    """One decision: read the boundary, decide, append on the condition that nothing in the
    boundary changed. Raises :class:`EnrolmentRefused`, or
    :class:`~eventlab.AppendConditionError` when another decision got there first (read
    again and decide again)."""
    read = await dcb.read(join_boundary(student_id, course_id))
    decide_join(read.events, student_id, course_id)
    joined = TaggedEvent(
        STUDENT_JOINED,
        {"student_id": student_id, "course_id": course_id},
        (student_tag(student_id), course_tag(course_id)),
    )
    (event,) = await dcb.append([joined], read.condition())
    return event
