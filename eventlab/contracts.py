"""Contract tests for the event store's ports: what every writer and reader must guarantee.

In the style of the ``eventsourcing`` library's recorder test cases: the cases live in the
package, and each backend or position strategy only says how to make its store. Subclass a
contract in a test module and provide the ``contract_store`` fixture::

    class TestMyStrategy(EventStoreContract):
        @pytest.fixture
        async def contract_store(self, connection):
            return MongoEventStore(connection, positions="preallocated")

Needs pytest and pytest-asyncio (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ._errors import ConcurrencyError, DuplicateEventError
from ._event_store import MongoEventStore
from ._records import ExpectedVersion, StoredEvent


def contract_event(aggregate_id: str, version: int, **payload: Any) -> StoredEvent:
    """A plain record for the contracts (no registry needed)."""
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="ContractNoted",
        aggregate_id=aggregate_id,
        aggregate_type="Contract",
        version=version,
        payload=payload or {"n": version},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _stream() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


class WriterContract:
    """An append is atomic, versioned by expectation, idempotent by event id."""

    @pytest.fixture
    async def contract_store(self) -> MongoEventStore:
        raise NotImplementedError("subclasses provide the store under test")

    async def test_append_assigns_versions_and_increasing_positions(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        events = [contract_event(sid, v) for v in (1, 2, 3)]
        stored = await contract_store.append(sid, events, 0)
        assert [e.version for e in stored] == [1, 2, 3]
        positions = [e.position or 0 for e in stored]
        assert all(p > 0 for p in positions)
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert await contract_store.get_current_version(sid) == 3

    async def test_wrong_expectation_is_a_conflict_and_writes_nothing(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        await contract_store.append(sid, [contract_event(sid, 1)], 0)
        for wrong in (0, 2, ExpectedVersion.NO_STREAM):
            with pytest.raises(ConcurrencyError):
                await contract_store.append(sid, [contract_event(sid, 2)], wrong)
        fresh = _stream()
        with pytest.raises(ConcurrencyError):
            await contract_store.append(
                fresh, [contract_event(fresh, 1)], ExpectedVersion.STREAM_EXISTS
            )
        assert await contract_store.read_stream(fresh) == []
        assert await contract_store.get_current_version(sid) == 1

    async def test_batch_across_streams_is_all_or_nothing(
        self, contract_store: MongoEventStore
    ) -> None:
        a, b = _stream(), _stream()
        await contract_store.append(b, [contract_event(b, 1)], 0)
        with pytest.raises(ConcurrencyError):
            # b is at 1, so b@1 conflicts: a's events must not be stored either
            await contract_store.append(a, [contract_event(a, 1), contract_event(a, 2)], 0)
            await contract_store.append(b, [contract_event(b, 1)], 0)
        assert [e.version for e in await contract_store.read_stream(a)] == [1, 2]

    async def test_resending_a_stored_batch_is_idempotent(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        events = [contract_event(sid, 1), contract_event(sid, 2)]
        first = await contract_store.append(sid, events, 0)
        again = await contract_store.append(sid, events, 0)
        assert [e.event_id for e in again] == [e.event_id for e in first]
        assert [e.position for e in again] == [e.position for e in first]
        assert len(await contract_store.read_stream(sid)) == 2

    async def test_same_id_with_other_content_is_refused(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        original = contract_event(sid, 1, n=1)
        await contract_store.append(sid, [original], 0)
        forged = StoredEvent(**{**_fields(original), "payload": {"n": 2}})
        with pytest.raises(DuplicateEventError):
            await contract_store.append(sid, [forged], 0)
        assert [e.payload for e in await contract_store.read_stream(sid)] == [{"n": 1}]

    async def test_concurrent_writers_at_one_version_one_wins(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        await contract_store.append(sid, [contract_event(sid, 1)], 0)

        async def write() -> bool:
            try:
                await contract_store.append(sid, [contract_event(sid, 2)], 1)
            except ConcurrencyError:
                return False
            return True

        results = await asyncio.gather(*(write() for _ in range(8)))
        assert results.count(True) == 1
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2]

    async def test_any_appends_from_many_writers_all_land(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        await asyncio.gather(
            *(
                contract_store.append(sid, [contract_event(sid, 1)], ExpectedVersion.ANY)
                for _ in range(6)
            )
        )
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2, 3, 4, 5, 6]


class StreamReaderContract:
    """A stream reads in version order, forwards or backwards, bounded as asked."""

    @pytest.fixture
    async def contract_store(self) -> MongoEventStore:
        raise NotImplementedError("subclasses provide the store under test")

    async def test_forwards_backwards_ranges_and_counts(
        self, contract_store: MongoEventStore
    ) -> None:
        sid = _stream()
        await contract_store.append(sid, [contract_event(sid, v) for v in range(1, 8)], 0)
        read = contract_store.read_stream

        async def versions(**kwargs: Any) -> list[int]:
            return [e.version for e in await read(sid, **kwargs)]

        assert await versions() == [1, 2, 3, 4, 5, 6, 7]
        assert await versions(after_version=2, to_version=5) == [3, 4, 5]
        assert await versions(max_count=2) == [1, 2]
        assert await versions(backwards=True) == [7, 6, 5, 4, 3, 2, 1]
        assert await versions(backwards=True, max_count=3) == [7, 6, 5]
        assert await versions(backwards=True, to_version=4, max_count=2) == [4, 3]
        assert await read(_stream()) == []
        assert await contract_store.get_current_version(_stream()) == 0


class LogReaderContract:
    """The log reads every stream in position order; resuming from a checkpoint loses nothing."""

    @pytest.fixture
    async def contract_store(self) -> MongoEventStore:
        raise NotImplementedError("subclasses provide the store under test")

    async def test_log_in_position_order_and_resumable(
        self, contract_store: MongoEventStore
    ) -> None:
        start = await _head(contract_store)
        streams = [_stream() for _ in range(3)]
        written: list[StoredEvent] = []
        for version in (1, 2, 3):
            for sid in streams:
                written += await contract_store.append(
                    sid, [contract_event(sid, version)], version - 1
                )
        log = await contract_store.read_all(start).to_list()
        mine = [e for e in log if e.aggregate_id in streams]
        assert [e.event_id for e in mine] == [e.event_id for e in written]
        positions = [e.position or 0 for e in log]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)

        # Resume from each checkpoint with a small page: no event repeated, none skipped.
        seen: list[StoredEvent] = []
        checkpoint = start
        while True:
            page = await contract_store.read_all(checkpoint, max_count=2, page_size=2).to_list()
            if not page:
                break
            seen += page
            checkpoint = page[-1].position or checkpoint
        assert [e.event_id for e in seen] == [e.event_id for e in log]

    async def test_event_type_filter(self, contract_store: MongoEventStore) -> None:
        start = await _head(contract_store)
        sid = _stream()
        other = StoredEvent(**{**_fields(contract_event(sid, 2)), "event_type": "ContractOther"})
        await contract_store.append(sid, [contract_event(sid, 1), other], 0)
        only = await contract_store.read_all(start, event_types=["ContractOther"]).to_list()
        assert [e.event_id for e in only] == [other.event_id]


class EventStoreContract(WriterContract, StreamReaderContract, LogReaderContract):
    """Every contract of the event store's ports."""


async def _head(store: MongoEventStore) -> int:
    last = await store.read_all(0).to_list()
    return max((e.position or 0 for e in last), default=0)


def _fields(event: StoredEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in StoredEvent.__dataclass_fields__}
