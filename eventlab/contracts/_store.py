"""The event store's contracts: appends (atomic, versioned by expectation, idempotent by event
id), stream reads, and units of work spanning streams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .._core.errors import (
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventError,
    EventlabError,
    InvalidEventError,
    SerializationError,
    UnknownEventTypeError,
)
from .._core.records import ExpectedVersion, StoredEvent
from ..ports import EventStore, UnitOfWork
from ._support import NeedsAStore, contract_event, fields, unique


class AppendContract(NeedsAStore):
    """An append is atomic, versioned by its expectation, idempotent by event id."""

    async def test_versions_follow_the_expectation_positions_increase(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        stored = await contract_store.append(sid, [contract_event(sid, 9) for _ in range(3)], 0)
        assert [e.version for e in stored] == [1, 2, 3]
        positions = [e.position or 0 for e in stored]
        assert positions == sorted(positions) and len(set(positions)) == 3 and positions[0] > 0
        assert all(e.recorded_at is not None for e in stored)
        assert await contract_store.get_current_version(sid) == 3

    async def test_a_wrong_expectation_is_a_conflict_and_writes_nothing(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)
        for wrong in (0, 2, ExpectedVersion.NO_STREAM):
            with pytest.raises(ConcurrencyError) as raised:
                await contract_store.append(sid, [contract_event(sid)], wrong)
            assert raised.value.actual_version == 1 and raised.value.aggregate_id == sid
        fresh = unique()
        with pytest.raises(ConcurrencyError):
            await contract_store.append(
                fresh, [contract_event(fresh)], ExpectedVersion.STREAM_EXISTS
            )
        assert await contract_store.read_stream(fresh) == []
        assert await contract_store.get_current_version(sid) == 1

    async def test_any_and_stream_exists_expectations(self, contract_store: EventStore) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], ExpectedVersion.ANY)
        (second,) = await contract_store.append(sid, [contract_event(sid)], ExpectedVersion.ANY)
        (third,) = await contract_store.append(
            sid, [contract_event(sid)], ExpectedVersion.STREAM_EXISTS
        )
        assert (second.version, third.version) == (2, 3)

    async def test_resending_a_stored_batch_is_idempotent(self, contract_store: EventStore) -> None:
        sid = unique()
        events = [contract_event(sid, 1), contract_event(sid, 2)]
        first = await contract_store.append(sid, events, 0)
        count = await contract_store.count()
        again = await contract_store.append(sid, events, 0)
        assert [(e.event_id, e.position) for e in again] == [
            (e.event_id, e.position) for e in first
        ]
        assert await contract_store.count() == count

    async def test_the_same_id_with_other_content_is_refused(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        original = contract_event(sid, n=1)
        await contract_store.append(sid, [original], 0)
        # True and 1.0 equal 1 in Python, but BSON stores three different values.
        for payload in ({"n": 2}, {"n": True}, {"n": 1.0}):
            forged = StoredEvent(**{**fields(original), "payload": payload})
            with pytest.raises(DuplicateEventError) as raised:
                await contract_store.append(sid, [forged], 0)
            assert raised.value.event_ids == [original.event_id]
        assert [e.payload for e in await contract_store.read_stream(sid)] == [{"n": 1}]

    async def test_a_batch_repeating_an_id_is_refused(self, contract_store: EventStore) -> None:
        sid = unique()
        event = contract_event(sid)
        with pytest.raises(InvalidEventError, match="repeats"):
            await contract_store.append(sid, [event, event], 0)
        assert await contract_store.read_stream(sid) == []

    async def test_events_of_another_stream_are_refused(self, contract_store: EventStore) -> None:
        sid = unique()
        with pytest.raises(InvalidEventError, match="belongs to"):
            await contract_store.append(sid, [contract_event(unique())], 0)

    async def test_concurrent_writers_at_one_version_one_wins(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid)], 0)

        async def write() -> bool:
            try:
                await contract_store.append(sid, [contract_event(sid)], 1)
            except ConcurrencyError:
                return False
            return True

        results = await asyncio.gather(*(write() for _ in range(8)))
        assert results.count(True) == 1
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2]

    async def test_any_appends_from_many_writers_all_land(self, contract_store: EventStore) -> None:
        sid = unique()
        await asyncio.gather(
            *(
                contract_store.append(sid, [contract_event(sid)], ExpectedVersion.ANY)
                for _ in range(6)
            )
        )
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2, 3, 4, 5, 6]

    async def test_payloads_round_trip_exactly_or_are_refused(
        self, contract_store: EventStore
    ) -> None:
        from datetime import UTC, datetime
        from decimal import Decimal

        sid = unique()
        payload: dict[str, Any] = {
            "d": Decimal("19.99"),
            "t": datetime(2026, 5, 1, 12, 30, tzinfo=UTC),
            "l": [1],
        }
        (stored,) = await contract_store.append(
            sid, [contract_event(sid, 1, "Exact", **payload)], 0
        )
        (read,) = await contract_store.read_stream(sid)
        assert read.payload == stored.payload == payload
        hostile: list[dict[str, Any]] = [
            {"n": 2**64},
            {"$where": "1"},
            {"t": datetime(2026, 1, 1)},
            {"text": "a\ud800b"},  # a lone surrogate: not UTF-8, which BSON's text is
            {"nested": {"list": ["\udfff"]}},
            {"deep": _nested(98)},  # 101 levels in the stored document: MongoDB stores 100
        ]
        for bad in hostile:
            other = unique()
            with pytest.raises(SerializationError):
                await contract_store.append(other, [contract_event(other, 1, "Hostile", **bad)], 0)
            assert await contract_store.read_stream(other) == []
        deepest = unique()  # 100 levels: stored, and read back whole
        await contract_store.append(deepest, [contract_event(deepest, 1, "Deep", d=_nested(97))], 0)
        (read,) = await contract_store.read_stream(deepest)
        assert read.payload["d"] == _nested(97)

    async def test_hostile_ids_and_expectations_are_typed_errors(
        self, contract_store: EventStore
    ) -> None:
        for bad_id in ({"$gt": ""}, "", 123, None):
            with pytest.raises(EventlabError):
                await contract_store.append(bad_id, [contract_event("x")], 0)  # type: ignore[arg-type]
        sid = unique()
        for bad in (-1, "1", 2**63, {"$gt": 0}):
            with pytest.raises(ConfigurationError):
                await contract_store.append(sid, [contract_event(sid)], bad)  # type: ignore[arg-type]
        assert await contract_store.read_stream(sid) == []

    async def test_metadata_is_stored_with_every_event_of_an_append(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        metadata = {"correlation_id": unique("corr"), "user": "ada"}
        stored = await contract_store.append(
            sid, [contract_event(sid), contract_event(sid)], 0, metadata=metadata
        )
        assert [e.metadata for e in stored] == [metadata, metadata]
        read = await contract_store.read_stream(sid)
        assert [e.metadata for e in read] == [metadata, metadata]

    async def test_the_count_grows_by_what_is_appended(self, contract_store: EventStore) -> None:
        before = await contract_store.count()
        sid = unique()
        assert await contract_store.append(sid, [], 0) == [], "an empty append writes nothing"
        assert await contract_store.count() == before
        await contract_store.append(sid, [contract_event(sid) for _ in range(3)], 0)
        assert await contract_store.count() == before + 3


class StreamReaderContract(NeedsAStore):
    """A stream reads in version order, forwards or backwards, bounded as asked."""

    async def test_forwards_backwards_ranges_and_counts(self, contract_store: EventStore) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid) for _ in range(7)], 0)

        async def versions(**kwargs: Any) -> list[int]:
            return [e.version for e in await contract_store.read_stream(sid, **kwargs)]

        assert await versions() == [1, 2, 3, 4, 5, 6, 7]
        assert await versions(after_version=2, to_version=5) == [3, 4, 5]
        assert await versions(max_count=2) == [1, 2]
        assert await versions(backwards=True) == [7, 6, 5, 4, 3, 2, 1]
        assert await versions(backwards=True, max_count=3) == [7, 6, 5]
        assert await versions(backwards=True, to_version=4, max_count=2) == [4, 3]
        assert await contract_store.read_stream(unique()) == []
        assert await contract_store.get_current_version(unique()) == 0

    async def test_typed_reads_give_domain_events(self, contract_store: EventStore) -> None:
        from ..samples import generate_orders

        order = next(generate_orders(1))
        pending = list(order.pending_events)
        await contract_store.append(order.id, pending, 0, aggregate_type="Order")
        typed = await contract_store.read_domain_events(order.id)
        assert [type(e).__name__ for e in typed] == [type(e).__name__ for e in pending]
        assert [e.event_id for e in typed] == [e.event_id for e in pending]

    async def test_domain_events_of_unknown_types_follow_the_policy(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid, 1, "NoSuchTypeAnywhere")], 0)
        (raw,) = await contract_store.read_domain_events(sid, unknown="raw")
        assert isinstance(raw, StoredEvent) and raw.event_type == "NoSuchTypeAnywhere"
        with pytest.raises(UnknownEventTypeError):
            await contract_store.read_domain_events(sid, unknown="raise")
        with pytest.raises(ConfigurationError):
            await contract_store.read_domain_events(sid, unknown="guess")  # type: ignore[arg-type]

    async def test_bad_read_arguments_are_typed_errors(self, contract_store: EventStore) -> None:
        sid = unique()
        await contract_store.append(sid, [contract_event(sid, 1)], 0)
        bad: list[dict[str, Any]] = [
            {"after_version": -1},
            {"after_version": 2**63},
            {"after_version": True},
            {"max_count": 0},
            {"max_count": "3"},
            {"to_version": {"$gt": 1}},
        ]
        for read in (contract_store.read_stream, contract_store.read_domain_events):
            for kwargs in bad:
                with pytest.raises(ConfigurationError):
                    await read(sid, **kwargs)
            for hostile in ({"$ne": None}, "", 123, "a\x00b", None):
                with pytest.raises(EventlabError):
                    await read(hostile)  # type: ignore[arg-type]
        assert [e.version for e in await contract_store.read_stream(sid)] == [1]

    async def test_interleaved_streams_read_apart(self, contract_store: EventStore) -> None:
        a, b = unique(), unique()
        for version in (1, 2, 3):
            await contract_store.append(a, [contract_event(a, version)], version - 1)
            if version < 3:
                await contract_store.append(b, [contract_event(b, version)], version - 1)
        read_a, read_b = await contract_store.read_stream(a), await contract_store.read_stream(b)
        assert [(e.aggregate_id, e.version) for e in read_a] == [(a, 1), (a, 2), (a, 3)]
        assert [(e.aggregate_id, e.version) for e in read_b] == [(b, 1), (b, 2)]
        assert [e.payload["n"] for e in read_a] == [1, 2, 3]


class UnitOfWorkContract(NeedsAStore):
    """A unit of work (``backend.run``) commits every write in it, or none."""

    async def test_appends_to_several_streams_commit_together(
        self, contract_store: EventStore
    ) -> None:
        a, b = unique(), unique()

        async def both(uow: UnitOfWork) -> None:
            await contract_store.append(a, [contract_event(a)], 0, uow=uow)
            await contract_store.append(b, [contract_event(b)], 0, uow=uow)

        await contract_store.backend.run(both)
        assert [await contract_store.get_current_version(s) for s in (a, b)] == [1, 1]

    async def test_a_failing_unit_of_work_writes_nothing(self, contract_store: EventStore) -> None:
        a, b = unique(), unique()
        await contract_store.append(b, [contract_event(b)], 0)

        async def conflicting(uow: UnitOfWork) -> None:
            await contract_store.append(a, [contract_event(a)], 0, uow=uow)
            await contract_store.append(b, [contract_event(b)], 0, uow=uow)  # b is at 1

        with pytest.raises(ConcurrencyError):
            await contract_store.backend.run(conflicting)
        assert await contract_store.read_stream(a) == []

        class Boom(Exception):
            pass

        async def failing(uow: UnitOfWork) -> None:
            await contract_store.append(a, [contract_event(a)], 0, uow=uow)
            raise Boom

        with pytest.raises(Boom):
            await contract_store.backend.run(failing)
        assert await contract_store.read_stream(a) == []

    async def test_reads_in_a_unit_of_work_see_its_own_appends(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()

        async def write_then_read(uow: UnitOfWork) -> tuple[int, int]:
            await contract_store.append(sid, [contract_event(sid), contract_event(sid)], 0, uow=uow)
            inside = await contract_store.get_current_version(sid, uow=uow)
            return inside, len(await contract_store.read_stream(sid, uow=uow))

        assert await contract_store.backend.run(write_then_read) == (2, 2)

    async def test_an_idempotent_retry_inside_a_unit_of_work(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()
        events = [contract_event(sid)]
        first = await contract_store.append(sid, events, 0)

        async def again(uow: UnitOfWork) -> list[StoredEvent]:
            return await contract_store.append(sid, events, 0, uow=uow)

        assert [e.position for e in await contract_store.backend.run(again)] == [
            e.position for e in first
        ]

    async def test_concurrent_units_of_work_on_one_stream_are_serialised(
        self, contract_store: EventStore
    ) -> None:
        sid = unique()

        async def add(uow: UnitOfWork) -> None:
            version = await contract_store.get_current_version(sid, uow=uow)
            await contract_store.append(sid, [contract_event(sid)], version, uow=uow)

        await asyncio.gather(*(contract_store.backend.run(add) for _ in range(5)))
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2, 3, 4, 5]


class EventStoreContract(AppendContract, StreamReaderContract, UnitOfWorkContract):
    """Every contract of the event store port."""


def _nested(levels: int) -> dict[str, Any]:
    """A document holding ``levels`` documents, one inside the other, then the innermost
    (at payload field ``d``, the stored document's levels are 3 + ``levels``)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"a": value}
    return value
