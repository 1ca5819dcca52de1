"""The DCB recorder, judged by the ``eventsourcing`` library's own DCB test case, on the test
deployment; then writers racing on overlapping boundaries, and hostile queries."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBQueryItem,
)
from eventsourcing.dcb.application import DCBApplication
from eventsourcing.dcb.tests import DCBRecorderTestCase
from eventsourcing.persistence import IntegrityError, ProgrammingError

from eventlab.eventsourcing import MongoDatastore, MongoDCBRecorder

URI: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def _deployment(mongo_uri: str) -> Iterator[None]:
    URI["uri"] = mongo_uri
    yield


def _recorder(database: str) -> tuple[MongoDatastore, MongoDCBRecorder]:
    datastore = MongoDatastore(URI["uri"], database)
    recorder = MongoDCBRecorder(datastore, "dcb_events")
    recorder.create_table()
    return datastore, recorder


class TestMongoDCBRecorder(DCBRecorderTestCase):
    def setUp(self) -> None:
        self.database = f"dcb_{uuid.uuid4().hex[:12]}"
        self.datastore, self.recorder = _recorder(self.database)

    def tearDown(self) -> None:
        self.datastore.client.drop_database(self.database)
        self.datastore.close()

    def test_append_read(self) -> None:
        self._test_append_read(self.recorder)

    def test_append_subscribe(self) -> None:
        self._test_append_subscribe(self.recorder)


def test_racing_enrolments_never_break_a_course_capacity() -> None:
    """16 writers enrol students into 3 courses of capacity 5, each decision reading the
    course's enrolments and appending on the condition that none was added since: every
    course ends with exactly its capacity, each conflicting decision refused."""
    database = f"dcb_{uuid.uuid4().hex[:12]}"
    datastore, recorder = _recorder(database)
    courses, capacity = ["c1", "c2", "c3"], 5
    refused = 0
    lock = threading.Lock()

    def enrol(student: int) -> None:
        nonlocal refused
        for course in courses:
            while True:
                query = DCBQuery([DCBQueryItem(types=["Enrolled"], tags=[f"course:{course}"])])
                response = recorder.read(query)
                taken = len(list(response))
                if taken >= capacity:
                    break
                event = DCBEvent("Enrolled", b"{}", [f"course:{course}", f"student:{student}"])
                try:
                    recorder.append([event], DCBAppendCondition(query, after=response.head))
                    break
                except IntegrityError:
                    with lock:
                        refused += 1

    try:
        threads = [threading.Thread(target=enrol, args=(s,)) for s in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for course in courses:
            query = DCBQuery([DCBQueryItem(types=["Enrolled"], tags=[f"course:{course}"])])
            assert len(list(recorder.read(query))) == capacity
        assert refused > 0, "16 writers on 3 courses of 5 must have met conflicts"
        everything = list(recorder.read())
        assert [e.position for e in everything] == list(range(1, 3 * capacity + 1))
    finally:
        datastore.client.drop_database(database)
        datastore.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.read(DCBQuery([DCBQueryItem(types=[{"$ne": 1}])])),
        lambda r: r.read(DCBQuery([DCBQueryItem(tags=[{"$gt": ""}])])),
        lambda r: r.read(after=-1),
        lambda r: r.read(after=2**70),
        lambda r: r.read(after="1"),
        lambda r: r.read(limit=-1),
        lambda r: r.append([]),
        lambda r: r.append([DCBEvent("", b"{}")]),
        lambda r: r.append([DCBEvent("T", b"{}", [{"$x": 1}])]),  # type: ignore[list-item]
        lambda r: r.append([{"type": "T"}]),
        # A bare string where a list belongs would be read as its characters.
        lambda r: r.read(DCBQuery([DCBQueryItem(types=[], tags="course:c1")])),  # type: ignore[arg-type]
        lambda r: r.read(DCBQuery([DCBQueryItem(types="Joined")])),  # type: ignore[arg-type]
        lambda r: r.append([DCBEvent("T", b"{}", "abc")]),  # type: ignore[arg-type]
        lambda r: r.append([DCBEvent("T", {"a": 1})]),  # type: ignore[arg-type]
        lambda r: r.read(limit=2**64),
    ],
    ids=[str(i) for i in range(15)],
)
def test_hostile_queries_and_events_are_refused_and_nothing_is_written(call: object) -> None:
    database = f"dcb_{uuid.uuid4().hex[:12]}"
    datastore, recorder = _recorder(database)
    try:
        with pytest.raises(ProgrammingError):
            call(recorder)  # type: ignore[operator]
        assert recorder.events.count_documents({}) == 0
    finally:
        datastore.client.drop_database(database)
        datastore.close()


def test_a_dcb_application_finds_the_recorder_through_its_persistence_module() -> None:
    database = f"dcb_{uuid.uuid4().hex[:12]}"

    class Courses(DCBApplication):
        pass

    app = Courses(
        env={
            "PERSISTENCE_MODULE": "eventlab.eventsourcing",
            "MONGODB_URI": URI["uri"],
            "MONGODB_DATABASE": database,
        }
    )
    try:
        assert isinstance(app.recorder, MongoDCBRecorder)
        query = DCBQuery([DCBQueryItem(types=["CourseRegistered"], tags=["course:c9"])])
        first = app.recorder.append([DCBEvent("CourseRegistered", b"{}", ["course:c9"])])
        with pytest.raises(IntegrityError):  # the same decision again, having read nothing
            app.recorder.append(
                [DCBEvent("CourseRegistered", b"{}", ["course:c9"])],
                DCBAppendCondition(query, after=None),
            )
        response = app.recorder.read(query)
        assert [e.position for e in response] == [first] and response.head == first
        stored = app.recorder.events.find_one({"position": first})  # type: ignore[attr-defined]
        assert stored["aggregate_type"] == "DCB" and stored["tags"] == ["course:c9"]
    finally:
        app.recorder.datastore.client.drop_database(database)  # type: ignore[attr-defined]
        app.close()
