"""Suite 9, Dynamic Consistency Boundaries (eventlab.dcb), on a store of ``store_size`` tagged
events (CI: 10,000; the documented run adds 100,000):

* a conditional append of 10 tagged events (a two-item condition, as a course-booking
  decision carries) vs a plain stream append of the same 10 events (paired);
* the read of a query (the events of one course tag, 1 in 50 of the store) vs the read of a
  stream of as many events (paired).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore, StoredEvent
from eventlab.dcb import AppendCondition, MongoDCBStore, Query, QueryItem, TaggedEvent

from ._paired import assert_ratio, paired
from .conftest import make_events

Run = Callable[[Awaitable[Any]], Any]
COURSES = 50
STUDENTS = 1000


@pytest.fixture(scope="module")
def tagged_store(
    store_size: int, connection: MongoConnectionManager, registry: EventRegistry, run: Run
) -> MongoEventStore:
    """``store_size`` tagged events (a course tag and a student tag each), written by restore,
    and one stream as long as one course's events."""
    store = MongoEventStore(
        connection, registry=registry, events_collection=f"bench_dcb_{store_size}"
    )
    run(MongoDCBStore(store).read(Query.of(tags=["warm-up"])))  # the tags index, before the data
    base = registry.to_stored(make_events(1)[0], aggregate_id="x", aggregate_type="DCB", version=1)
    events = [
        StoredEvent(
            event_id=uuid.uuid4(),
            event_type="StudentJoinedCourse",
            aggregate_id=f"dcb:{position}",
            aggregate_type="DCB",
            version=1,
            payload=base.payload,
            metadata=base.metadata,
            occurred_at=base.occurred_at,
            position=position,
            recorded_at=base.occurred_at,
            tags=(f"course:c{position % COURSES}", f"student:s{position % STUDENTS}"),
        )
        for position in range(1, store_size + 1)
    ]
    run(store.restore(events, chunk_size=2000))
    stream = f"course-stream-{uuid.uuid4().hex[:8]}"
    batch = make_events(store_size // COURSES)
    run(store.append(stream, batch, 0))
    store.bench_stream = stream  # type: ignore[attr-defined]
    return store


def _tagged(count: int) -> list[TaggedEvent]:
    payload = {"student_id": "s1", "course_id": "c1", "note": "x" * 200}
    return [
        TaggedEvent("StudentJoinedCourse", payload, (f"course:n{uuid.uuid4().hex}", "student:s1"))
        for _ in range(count)
    ]


def test_conditional_append_vs_plain_append(
    benchmark: Any, tagged_store: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """What a DCB condition costs an append: the counter first, then one indexed read per
    query item bounded by the position the decision read, then the insert (with its tag keys)."""
    dcb = MongoDCBStore(tagged_store)

    def condition() -> tuple[Any, ...]:
        head = run(dcb.read(Query.of(tags=["course:none"]))).head
        items = (
            QueryItem(("StudentRegistered", "StudentJoinedCourse"), ("student:s1",)),
            QueryItem(("CourseRegistered", "StudentJoinedCourse"), ("course:c1",)),
        )
        return (_tagged(10), AppendCondition(Query(items), after=head))

    def stream_events() -> tuple[Any, ...]:
        return (f"plain-{uuid.uuid4().hex}", make_events(10))

    paired(
        benchmark,
        name="dcb-conditional-append",
        server=server_label,
        target=lambda events, cond: run(dcb.append(events, cond)),
        baseline=lambda stream, events: run(tagged_store.append(stream, events, 0)),
        prepare=condition,
        prepare_baseline=stream_events,
        rounds=15,
    )
    benchmark.extra_info["store_size"] = store_size
    assert_ratio(benchmark)


def test_query_read_vs_stream_read(
    benchmark: Any, tagged_store: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """One course's events by tag (the multikey index) vs a stream of as many events."""
    dcb = MongoDCBStore(tagged_store)
    stream = tagged_store.bench_stream  # type: ignore[attr-defined]
    query = Query.of(types=["StudentJoinedCourse"], tags=["course:c7"])
    read = paired(
        benchmark,
        name="dcb-query-read",
        server=server_label,
        target=lambda: run(dcb.read(query)),
        baseline=lambda: run(tagged_store.read_stream(stream)),
        rounds=10,
    )
    assert len(read.events) == store_size // COURSES
    benchmark.extra_info.update(store_size=store_size, events_read=len(read.events))
    assert_ratio(benchmark)
