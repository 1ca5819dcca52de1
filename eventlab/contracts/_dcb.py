"""The contracts of Dynamic Consistency Boundaries (the :class:`~eventlab.ports.DCBStore` port):
reads bounded by the head they report, conditional appends that no concurrent or interleaved
writer slips past, idempotent retries by event id, hostile input refused with nothing written,
and a preallocated store refused.

A backend's test module provides ``make_dcb``: the DCB store over a store under contract
(``lambda store: MongoDCBStore(store)``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from .._core import races as races
from .._core.errors import (
    AppendConditionError,
    ConfigurationError,
    DataError,
    DocumentTooLargeError,
    DuplicateEventError,
    EventlabError,
    InvalidEventError,
    InvalidIdError,
    InvalidSpecificationError,
    SerializationError,
)
from .._dcb.records import AppendCondition, Query, QueryItem, TaggedEvent
from ..ports import DCBStore, EventStore
from ._support import NeedsAStore, contract_event, unique

DCBFactory = Callable[[EventStore], DCBStore]


def _tagged(event_type: str, *tags: str, **payload: Any) -> TaggedEvent:
    return TaggedEvent(event_type, payload or {"n": 1}, tags)


def _join(student: str, course: str) -> TaggedEvent:
    return TaggedEvent("Joined", {"student": student}, (f"course:{course}", f"student:{student}"))


def _boundary(course: str, student: str, *more: QueryItem) -> Query:
    """The course's registration and students first, the student's joins second."""
    return Query(
        (
            QueryItem(("Registered", "Joined"), (f"course:{course}",)),
            QueryItem(("Joined",), (f"student:{student}",)),
            *more,
        )
    )


async def _students(dcb: DCBStore, course: str) -> list[str]:
    read = await dcb.read(Query.of(types=["Joined"], tags=[f"course:{course}"]))
    return [e.payload["student"] for e in read.events]


async def _count(dcb: DCBStore) -> int:
    return len((await dcb.read()).events)


class _Needs(NeedsAStore):
    @pytest.fixture
    def make_dcb(self) -> DCBFactory:
        raise NotImplementedError("a backend's test module says how to make its DCB store")

    @pytest.fixture
    async def dcb(self, contract_store: EventStore, make_dcb: DCBFactory) -> DCBStore:
        if (await contract_store.log.head()).strategy != "transactional":
            pytest.skip("DCB needs transactional positions")
        return make_dcb(contract_store)


class DCBContract(_Needs):
    """The :class:`~eventlab.ports.DCBStore` port's guarantees."""

    async def test_reads_by_types_and_tags_and_appends_under_a_condition(
        self, contract_store: EventStore, dcb: DCBStore
    ) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)  # a stream event beside
        base = (await contract_store.log.head()).position
        await dcb.append([_tagged("A", "x", "y"), _tagged("B", "x"), _tagged("A", "z")])
        by_tag = await dcb.read(Query.of(tags=["x"]), after=base)
        assert [(e.event_type, e.tags) for e in by_tag.events] == [("A", ("x", "y")), ("B", ("x",))]
        assert by_tag.head == base + 3
        both = await dcb.read(Query.of(types=["A"], tags=["x", "y"]), after=base)
        assert [e.position for e in both.events] == [base + 1]
        either = await dcb.read(Query.of(types=["B"]) | Query.of(tags=["z"]), after=base)
        assert [e.position for e in either.events] == [base + 2, base + 3]
        assert len((await dcb.read(after=base - 1)).events) == 4  # every event, streams too
        page = await dcb.read(Query.of(types=["A"]), after=base, limit=1)
        assert [e.position for e in page.events] == [base + 1] and page.head == base + 1
        (stored,) = await dcb.append([_tagged("C", "x")], by_tag.condition())
        assert stored.position == base + 4 and stored.aggregate_id == f"dcb:{base + 4}"
        with pytest.raises(AppendConditionError, match=f"#{base + 4} \\(C; x\\)") as refused:
            await dcb.append([_tagged("D", "x")], by_tag.condition())
        assert refused.value.event.event_id == stored.event_id
        assert await _count(dcb) == 5
        await dcb.append([_tagged("E", "w")], AppendCondition(Query.of(tags=["q"]), after=base))

    async def test_dcb_events_are_log_events(
        self, contract_store: EventStore, dcb: DCBStore
    ) -> None:
        first, second = await dcb.append([_tagged("Joined", "course:c1"), _tagged("X")])
        log = await contract_store.log.read(0, (await contract_store.log.head()).position)
        assert [(e.event_id, e.tags, e.aggregate_id, e.version) for e in log.events] == [
            (first.event_id, ("course:c1",), f"dcb:{first.position}", 1),
            (second.event_id, (), f"dcb:{second.position}", 1),
        ]

    async def test_a_retry_returns_the_stored_events_and_other_content_is_refused(
        self, dcb: DCBStore
    ) -> None:
        """The stream API's rule: the same id and the same event (type, payload, tags) is a
        retry, metadata aside (a retried command carries fresh trace ids); anything else under
        a stored id is refused, and so is a batch stored only in part."""
        events = [TaggedEvent("A", {"n": 1}, ("k",), {"trace": "a"}), _tagged("B", "k")]
        condition = AppendCondition(Query.of(tags=["k"]), after=0)
        first = await dcb.append(events, condition)
        resent = [TaggedEvent("A", {"n": 1}, ("k",), {"trace": "b"}, events[0].event_id)]
        again = await dcb.append([*resent, events[1]], condition)  # an unknown outcome's retry
        assert [e.position for e in again] == [e.position for e in first]
        original = events[0].event_id
        others = [
            TaggedEvent("A", {"n": 2}, ("k",), event_id=original),
            TaggedEvent("A", {"n": True}, ("k",), event_id=original),  # BSON: not the 1 stored
            TaggedEvent("Z", {"n": 1}, ("k",), event_id=original),
            TaggedEvent("A", {"n": 1}, ("k", "j"), event_id=original),
        ]
        for other in others:
            for retry_condition in (condition, None):
                with pytest.raises(DuplicateEventError) as raised:
                    await dcb.append([other], retry_condition)
                assert raised.value.event_ids == [original]
        with pytest.raises(DuplicateEventError):  # stored in part: not this append again
            await dcb.append([events[0], _tagged("C", "k")])
        assert [e.payload for e in (await dcb.read()).events] == [{"n": 1}, {"n": 1}]

    async def test_conflicting_decisions_have_exactly_one_winner(self, dcb: DCBStore) -> None:
        await dcb.append([_tagged("Registered", "course:c1", places=1)])
        reads = [await dcb.read(_boundary("c1", f"s{i}")) for i in range(12)]

        async def decide(i: int) -> str:
            try:
                await dcb.append([_join(f"s{i}", "c1")], reads[i].condition())
            except AppendConditionError:
                return "refused"
            return "joined"

        outcomes = Counter(await asyncio.gather(*(decide(i) for i in range(12))))
        assert outcomes == {"joined": 1, "refused": 11}
        assert len(await _students(dcb, "c1")) == 1

    async def test_disjoint_boundaries_never_refuse_each_other(self, dcb: DCBStore) -> None:
        reads = [await dcb.read(_boundary(f"c{i}", f"s{i}")) for i in range(8)]
        await asyncio.gather(
            *(dcb.append([_join(f"s{i}", f"c{i}")], reads[i].condition()) for i in range(8))
        )
        assert [len(await _students(dcb, f"c{i}")) for i in range(8)] == [1] * 8

    @pytest.mark.parametrize("limit", [None, 10])
    async def test_an_append_between_the_parts_of_a_read_is_not_missed(
        self, dcb: DCBStore, limit: int | None
    ) -> None:
        """Between a read's two item queries another writer appends an event matching the
        first item (already read), then one matching the second (not yet read, at a higher
        position). The read's head stays below both, so the condition refuses."""
        await dcb.append([_tagged("Registered", "course:c1", places=1)])
        extra = iter([_join("bob", "c1"), _join("ada", "c2")])

        async def others() -> None:
            for event in extra:
                await dcb.append([event])

        async with races.acting_at("dcb.read.between_items", others) as race:
            before = race.reached_count
            read = await dcb.read(_boundary("c1", "ada"), limit=limit)
        assert race.reached_count == before + 1
        assert [e.event_type for e in read.events] == ["Registered"]
        with pytest.raises(AppendConditionError, match="student:bob"):
            await dcb.append([_join("ada", "c1")], read.condition())
        assert await _students(dcb, "c1") == ["bob"]

    async def test_every_part_of_a_read_of_many_items_is_bounded(self, dcb: DCBStore) -> None:
        await dcb.append([_tagged("Registered", "course:c1", places=1)])
        extra = iter([_join("bob", "c1"), _join("bob", "c3")])

        async def another() -> None:
            await dcb.append([next(extra)])

        c3 = QueryItem(("Joined",), ("course:c3",))
        async with races.acting_at("dcb.read.between_items", another, times=2) as race:
            before = race.reached_count
            read = await dcb.read(_boundary("c1", "ada", c3))
        assert race.reached_count == before + 2
        assert [e.event_type for e in read.events] == ["Registered"]
        with pytest.raises(AppendConditionError):
            await dcb.append([_join("ada", "c1")], read.condition())

    async def test_an_append_holding_the_counter_makes_a_rival_wait_and_lose(
        self, dcb: DCBStore
    ) -> None:
        read = await dcb.read(_boundary("c1", "ada"))
        async with races.paused_at("dcb.append.before_check") as pause:
            first = asyncio.create_task(dcb.append([_join("bob", "c1")], read.condition()))
            await pause.reached.wait()
            rival = asyncio.create_task(dcb.append([_join("ada", "c1")], read.condition()))
            await asyncio.sleep(0)
            pause.resume()
            (stored,) = await first
        with pytest.raises(AppendConditionError) as refused:
            await rival
        assert refused.value.event.event_id == stored.event_id

    async def test_a_preallocated_store_is_refused_and_nothing_is_written(
        self, contract_store: EventStore, make_dcb: DCBFactory
    ) -> None:
        if (await contract_store.log.head()).strategy != "preallocated":
            pytest.skip("a preallocated store's refusal")
        dcb = make_dcb(contract_store)
        before = await contract_store.count()
        for attempt in (dcb.append([_tagged("A", "t")]), dcb.read(Query.of(tags=["t"]))):
            with pytest.raises(ConfigurationError, match=r"'transactional'.*'preallocated'"):
                await attempt
        assert await contract_store.count() == before


OPERATOR: Any = {"$ne": None}
LIST: Any = [1]
Invalid = InvalidSpecificationError
HOSTILE_CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("events not a list", lambda d: d.append(_tagged("A")), Invalid, "list"),
    ("no events", lambda d: d.append([]), Invalid, "1 to 10000"),
    ("10,001 events", lambda d: d.append([_tagged("A")] * 10_001), Invalid, "1 to"),
    ("an id twice", lambda d: d.append([_tagged("A")] * 2), InvalidEventError, "repeats"),
    ("a dict as event", lambda d: d.append([{"event_type": "A"}]), Invalid, "not a TaggedEvent"),
    ("type operator", lambda d: d.append([TaggedEvent(OPERATOR, {})]), Invalid, "event type"),
    ("tags operator", lambda d: d.append([TaggedEvent("A", {}, OPERATOR)]), Invalid, "tags must"),
    ("tag operator", lambda d: d.append([TaggedEvent("A", {}, (OPERATOR,))]), Invalid, "tag"),
    ("payload a list", lambda d: d.append([TaggedEvent("A", LIST)]), EventlabError, "payload must"),
    ("payload operator key", lambda d: d.append([TaggedEvent("A", {"$gt": 1})]), DataError, "$"),
    ("int beyond 64 bits", lambda d: d.append([_tagged("A", n=2**70)]), SerializationError, "64"),
    (
        "17 MB",
        lambda d: d.append([_tagged("A", s="x" * 17_000_000)]),
        DocumentTooLargeError,
        "bytes",
    ),
    ("condition a dict", lambda d: d.append([_tagged("A")], {"after": 0}), Invalid, "Condition"),
    ("query as operator", lambda d: d.read(OPERATOR), Invalid, "must be a Query"),
    ("Query.of a bare type", lambda d: d.read(Query.of(types="Seed")), Invalid, "types must be"),
    (
        "Query.of a bare tag",
        lambda d: d.append(
            [TaggedEvent("A", {}, ("t",))], AppendCondition(Query.of(tags="course:c1"))
        ),
        Invalid,
        "tags must be",
    ),
    ("Query.of an operator", lambda d: d.read(Query.of(tags=OPERATOR)), Invalid, "tags must"),
    ("read after -1", lambda d: d.read(Query(), after=-1), Invalid, "after"),
    ("read after huge", lambda d: d.read(Query(), after=2**70), Invalid, "after"),
    ("read after a string", lambda d: d.read(Query(), after="1"), Invalid, "after"),
    ("limit 0", lambda d: d.read(Query(), limit=0), Invalid, "limit"),
    ("limit huge", lambda d: d.read(Query(), limit=2**63), Invalid, "limit"),
    ("limit as operator", lambda d: d.read(Query(), limit=OPERATOR), Invalid, "limit"),
    (
        "id an operator",
        lambda d: d.append([TaggedEvent("A", {}, event_id=OPERATOR)]),
        DataError,
        "_id",
    ),
]


class DCBHostileContract(_Needs):
    """Every entry point refuses hostile input with a typed error naming it, writing nothing."""

    @pytest.mark.parametrize(
        ("label", "call", "error", "named"), HOSTILE_CALLS, ids=[h[0] for h in HOSTILE_CALLS]
    )
    async def test_hostile_calls_are_refused_and_nothing_is_written(
        self, dcb: DCBStore, label: str, call: Any, error: type[Exception], named: str
    ) -> None:
        await dcb.append([_tagged("Before", "t")])
        with pytest.raises(error, match=named.replace("$", r"\$")):
            await call(dcb)
        read = await dcb.read()
        assert [e.event_type for e in read.events] == ["Before"] and read.head == 1

    async def test_a_stream_cannot_take_the_name_of_a_dcb_event(
        self, dcb: DCBStore, contract_store: EventStore
    ) -> None:
        """DCB events are streams ``dcb:<position>``: a stream append under that prefix would
        take the next DCB event's place and refuse every DCB append at it from then on."""
        head = (await dcb.read()).head
        for name in (f"dcb:{head + 1}", f"dcb:{head + 2}", "dcb:x"):
            with pytest.raises(InvalidIdError, match="reserved for DCB"):
                await contract_store.append(name, [contract_event(name)], 0)
        await dcb.append([_tagged("After", "t")])
        await dcb.append([_tagged("After", "t")])
        assert [e.event_type for e in (await dcb.read()).events][-2:] == ["After", "After"]
